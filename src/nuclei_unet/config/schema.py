"""The params schema: one pydantic model per section of params.yaml, the one home of defaults.

The defaults are the project's best measured recipe, the same values params.yaml spells out
(a test holds the two equal); the seed notebook's recipe is ``make seed``'s overrides. Every
model is strict and frozen: an unknown key, a wrong type or an out-of-range value is refused
with its key path before any work starts (see :mod:`nuclei_unet.config.load`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "bf16", "auto"]


def _list_to_tuple(value: Any) -> Any:
    """YAML gives lists; the (hashable, frozen) sections keep tuples."""
    return tuple(value) if isinstance(value, list) else value


IntTuple = Annotated[tuple[int, ...], BeforeValidator(_list_to_tuple)]
FloatTuple = Annotated[tuple[float, ...], BeforeValidator(_list_to_tuple)]
def _multiple_of_16(value: int) -> int:
    if value < 16 or value % 16:
        raise ValueError(f"must be a positive multiple of 16 (four 2x poolings), got {value}")
    return value


NonNegative = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Side = Annotated[int, AfterValidator(_multiple_of_16)]  # an image side the U-Net accepts
# the most predict may zoom an image by on a user's word (tile_scale, each of scales): 4x of a
# 1,388x1,040 DSB image is 23 megapixels; 100x would take a machine's memory without a word
MAX_ZOOM = 4.0


class Section(BaseModel):
    """Base of every section: strict types, finite numbers, no unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class SyntheticParams(Section):
    """How many synthetic images to generate and how crowded they are."""

    count: int = Field(48, ge=1)  # keeps `make run` under 5 minutes on 2 cores
    min_nuclei: int = Field(3, ge=1)
    max_nuclei: int = 80

    @field_validator("max_nuclei")
    @classmethod
    def _at_least_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_nuclei", 1)
        if value < low:
            raise ValueError(f"must be >= min_nuclei ({low}), got {value}")
        return value


class DownloadParams(Section):
    """Where the raw DSB-layout dataset comes from."""

    source: Literal["synthetic", "zip", "url", "bbbc038", "kaggle"] = "synthetic"
    # validated even when left out: a zip or url source needs one
    path: str | None = Field(None, validate_default=True)
    url: str | None = Field(None, validate_default=True)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    cache_dir: str | None = None
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(4, ge=0)
    backoff: NonNegative = 1.0
    synthetic: SyntheticParams = SyntheticParams()

    @field_validator("path")
    @classmethod
    def _path_for_zip(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("source") == "zip" and value is None:
            raise ValueError("required when source is zip")
        return value

    @field_validator("url")
    @classmethod
    def _url_for_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        ok = value is not None and value.split(":", 1)[0] in ("http", "https", "file")
        if info.data.get("source") == "url" and not ok:
            raise ValueError("an http, https or file URL is required when source is url")
        return value


class NativeParams(Section):
    """The full-resolution training set: each image at a common nucleus size, with targets."""

    enabled: bool = True  # also write prepared/native/<id>.npz (what train.input crops needs)
    # each image is rescaled so its median nucleus diameter is this many pixels; null: as it is
    diameter: float | None = Field(20.0, gt=0)
    # the edge class: nucleus pixels within this many px (at that scale) of another label
    edge_width: int = Field(2, ge=1)


class PrepareParams(Section):
    """Resizing of images and merging of masks."""

    size: Side = 128
    mask_rule: Literal["area", "any"] = "area"
    workers: int = Field(0, ge=0)  # 0 = all cores
    weight_map: bool = False
    w0: float = 10.0
    sigma: float = Field(5.0, gt=0)
    native: NativeParams = NativeParams()


class SplitParams(Section):
    """Test and validation split, as in the seed notebook."""

    n_test: int = Field(2, ge=0)
    val_fraction: float = Field(0.1, gt=0, lt=1)


class ModelParams(Section):
    """U-Net widths and dropouts, one entry per level (top to bottleneck), and how each image
    is brought to the network's input range (:mod:`nuclei_unet.model.preprocess`)."""

    widths: IntTuple = (16, 32, 64, 128, 256)
    dropouts: FloatTuple = (0.1, 0.1, 0.2, 0.2, 0.3)
    norm: Literal["none", "batch", "instance"] = "batch"
    normalize: Literal["none", "percentile"] = "none"

    @field_validator("widths")
    @classmethod
    def _levels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) < 2:
            raise ValueError("needs at least two levels")
        if min(value) < 1:
            raise ValueError("must all be >= 1")
        return value

    @field_validator("dropouts")
    @classmethod
    def _one_per_level(cls, value: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
        levels = len(info.data.get("widths", value))
        if len(value) != levels:
            raise ValueError(f"needs one value per level ({levels}), got {len(value)}")
        if not all(0.0 <= d < 1.0 for d in value):
            raise ValueError("must be in [0, 1)")
        return value


class AugmentParams(Section):
    """On-the-fly augmentation; every number 0 (and both switches false) is off."""

    flip: bool = True
    rot90: bool = True
    elastic_sigma: NonNegative = 10.0  # px of displacement at a 256-px image, scaled to the size
    rotate_deg: NonNegative = 0.0
    scale: float = Field(0.0, ge=0, lt=1)
    gain: NonNegative = 0.0  # exposure: intensities times exp(U(-x, x)), rounded to 8 bits
    offset: float = Field(0.0, ge=0, le=1)  # raised background: plus U(0, x) of full scale
    brightness: NonNegative = 0.0
    contrast: NonNegative = 0.0
    gamma: NonNegative = 0.0
    color: NonNegative = 0.0
    hed: NonNegative = 0.5  # colour images: haematoxylin, eosin, DAB each times exp(U(-x, x))
    # stain robustness, each a probability per sample: gray (mean of the channels),
    # inversion (255 - x), a random permutation of the colour channels
    gray: Probability = 0.0
    invert: Probability = 0.0
    channel_shuffle: Probability = 0.0


class TrainParams(Section):
    """Optimiser, schedule, early stopping, runtime and augmentation."""

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.99, ge=0, lt=1)
    weight_decay: NonNegative = 0.0
    scheduler: Literal["none", "cosine", "plateau"] = "cosine"
    loss: Literal["bce", "bce_dice", "dice", "softmax_ce"] = "bce_dice"
    weight_map: bool = False
    batch_size: int = Field(16, ge=1)
    epochs: int = Field(30, ge=1)
    patience: int | None = Field(None, ge=1)  # null: no early stopping
    # the weights written: best (the seed: the epoch of the lowest val_loss) | last (the last
    # epoch's: val chooses nothing) | average (the mean of the last average_epochs epochs'
    # weights, Izmailov et al. 2018's stochastic weight averaging)
    keep: Literal["best", "last", "average"] = "best"
    average_epochs: int = Field(5, ge=2)
    device: Device = "auto"
    precision: Precision = "auto"  # bf16 where the CPU has it natively, or on CUDA
    threads: int = Field(0, ge=0)  # 0 = all cores
    processes: int = Field(1, ge=1)
    workers: int = Field(0, ge=0)
    # resized: the prepared images at prepare.size (the seed) | crops: random crops of the
    # native set (prepare.native), a new draw every epoch
    input: Literal["resized", "crops"] = "crops"
    crop_size: Side = 128
    crops_per_image: int = Field(2, ge=1)  # crops of each training image per epoch
    scale_jitter: float = Field(0.25, ge=0, lt=1)  # crops zoomed by [1/(1+x), 1+x], log-uniform
    edge: bool = True  # also learn the edge class (a second output channel); needs crops
    oversample_stained: float = Field(1.0, ge=1)  # crops: stained images drawn this many times more
    # crops: each image drawn in proportion to its area (at the native set's scale) to this
    # power: 0 each image alike, 1 each pixel alike (large sparse images are otherwise rarely seen)
    area_power: float = Field(0.0, ge=0, le=1)
    # crops: the stained/brightfield images also get augment.gain and offset (false: only the
    # fluorescence ones, whose exposure varies between microscopes far more)
    exposure_stained: bool = True
    # crops: loss weight of the pixels where touching nuclei meet (contact and gap), 1: none
    contact_weight: float = Field(5.0, ge=1)
    # crops: share of crops placed around a random nucleus pixel (nnU-Net's foreground
    # oversampling, 0.33 there), the rest anywhere
    foreground_crops: float = Field(0.0, ge=0, le=1)
    augment: AugmentParams = AugmentParams()

    @field_validator("edge")
    @classmethod
    def _edge_needs_crops(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("input") != "crops":
            raise ValueError("needs input: crops (the edge class comes from prepare.native)")
        if value and info.data.get("loss") == "softmax_ce":
            raise ValueError("needs a sigmoid loss (bce, bce_dice or dice), not softmax_ce")
        return value


class PredictParams(Section):
    """Thresholding, full-resolution prediction and instance separation.

    Each description is also the help of the ``nuclei-unet predict`` flag of the same name.
    """

    threshold: float = Field(
        0.55, gt=0, lt=1, description="probability above which a pixel is nucleus"
    )
    batch_size: int = Field(32, ge=1, description="images (or tiles) per forward pass")
    device: Device = Field("auto", description="auto: CUDA when torch sees a GPU, else CPU")
    precision: Precision = Field(
        "auto", description="auto: bf16 where the CPU has native bf16, or on CUDA; else fp32"
    )
    tta: bool = Field(True, description="average the 8 flips/rotations of each image")
    exposure: Literal["keep", "fit"] = Field(
        "fit", description="fit: an image dimmer than any of its kind the model trained on "
        "(99.9th percentile) is scaled to their median, a fluorescence image on a brighter "
        "background (median) has the excess subtracted first; images in the trained range, "
        "and images in which nothing stands out of their noise (an empty field), stay as they "
        "are. keep: every image as it is (the previous rule)"
    )
    mode: Literal["resize", "tile", "scaled"] = Field(
        "scaled", description="resize: predict at the training size and resize back; "
        "tile: overlap-tile the image rescaled by tile_scale; scaled: overlap-tile it rescaled "
        "to the model's nucleus diameter, estimated from the model's own objects"
    )
    tile_size: Side = Field(128, description="tile mode: tile side in pixels (a multiple of 16)")
    tile_overlap: int = Field(32, description="tile mode: overlap of neighbouring tiles (even)")
    tile_scale: float = Field(
        0.5, gt=0, le=MAX_ZOOM, description="tile mode: the image is rescaled by this first"
    )
    instances: Literal["watershed", "edge", "components"] = Field(
        "edge", description="watershed: split touching nuclei at the distance "
        "transform's waists; edge: seeds are nucleus minus the learned edge class (models "
        "trained with train.edge); components: no splitting"
    )
    seed_threshold: float = Field(
        0.7, gt=0, lt=1, description="edge: body probability nucleus x (1 - edge) above which "
        "a pixel seeds a nucleus (higher: more seeds kept apart)"
    )
    scale_start: float = Field(
        0.5, gt=0, le=1, description="scaled mode: the scale of a first, coarse pass; when it "
        "finds nuclei larger than the model's, the scale search goes on from its guess, else "
        "from 1 (1: no coarse pass, the previous rule)"
    )
    scale_passes: int = Field(
        3, ge=1, description="scaled mode: at most this many passes to settle the scale"
    )
    scales: Annotated[tuple[float, ...], BeforeValidator(_list_to_tuple)] = Field(
        (1.0,), description="scaled mode: multiples of the estimated scale the image is "
        "predicted at, their maps averaged (multi-scale TTA)"
    )
    min_size: int = Field(
        25, ge=0,
        description="objects smaller than this many pixels (full resolution) are dropped; scaled"
        " mode: at most half the area of a nucleus at the estimated scale",
    )
    min_distance: int = Field(
        5, ge=1, description="watershed: minimum distance between nucleus centres (pixels)"
    )
    full_res_splits: Annotated[
        tuple[Literal["train", "val", "test"], ...], BeforeValidator(_list_to_tuple)
    ] = Field(("val", "test"), description="splits the stage predicts at full resolution")

    @field_validator("scales")
    @classmethod
    def _scales_positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or min(value) <= 0 or max(value) > MAX_ZOOM:
            raise ValueError(f"must be one or more factors in (0, {MAX_ZOOM}], got {list(value)}")
        return value

    @field_validator("tile_overlap")
    @classmethod
    def _overlap_fits(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("tile_size", value + 1)  # absent when tile_size itself failed
        if not (0 <= value < size and value % 2 == 0):
            raise ValueError(f"must be even, >= 0 and smaller than tile_size, got {value}")
        return value


class EvaluateParams(Section):
    """Metric smoothing and how many samples the figures show."""

    smooth: NonNegative = 1e-3  # the seed's smoothing term in per-image IoU/Dice
    n_samples: int = Field(4, ge=0)


SECTIONS: dict[str, type[Section]] = {
    "download": DownloadParams,
    "prepare": PrepareParams,
    "split": SplitParams,
    "model": ModelParams,
    "train": TrainParams,
    "predict": PredictParams,
    "evaluate": EvaluateParams,
}
