"""A bioimage.io model package of a trained model: the format the model zoo, deepImageJ,
ilastik and the bioimageio tools load.

The package holds TorchScript weights and the PyTorch state dict (built by
``nuclei_unet.model.unet.UNet``), the input and output axes, the preprocessing the pipeline
applies (uint8 RGB divided by 255, after the model's percentile stretch when it was trained
with one) and a sigmoid on the logits, a test input with its
expected output, a cover image, and authors, licence and citations.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from bioimageio.spec import save_bioimageio_package
from bioimageio.spec.model import v0_5 as bmz
from PIL import Image

from nuclei_unet.config.schema import SyntheticParams
from nuclei_unet.data.kinds import FLUORESCENCE
from nuclei_unet.data.synthetic import generate_image
from nuclei_unet.errors import NucleiError
from nuclei_unet.io.files import atomic_path, require_suffix
from nuclei_unet.model.checkpoint import architecture, load_network, normalize_rule
from nuclei_unet.model.preprocess import DIVIDE_BY, PERCENTILES, to_input
from nuclei_unet.model.unet import UNet
from nuclei_unet.transforms.resize import resize_image

log = logging.getLogger(__name__)

CITATIONS = [
    bmz.CiteEntry(
        text="Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image "
        "Segmentation. MICCAI 2015", doi=bmz.Doi("10.1007/978-3-319-24574-4_28"),
    ),
    bmz.CiteEntry(
        text="Caicedo et al. Nucleus segmentation across imaging experiments: the 2018 Data "
        "Science Bowl. Nature Methods 16, 1247-1253 (2019); data: BBBC038 (Broad Bioimage "
        "Benchmark Collection)", doi=bmz.Doi("10.1038/s41592-019-0612-7"),
    ),
]
DOCUMENTATION = """# nuclei-unet U-Net

A U-Net (Ronneberger et al. 2015) that segments cell nuclei, trained by the nuclei-unet DVC
pipeline on 2018 Data Science Bowl images (BBBC038) or on its synthetic stand-in.

- Input `raw`: an RGB image, uint8, axes batch, channel (R, G, B), y, x; y and x a multiple
  of {divisor}. Gray images: repeat the channel three times. Preprocessing: {preprocessing}.
- Output `probability`: {channels} per pixel (a sigmoid on the logits), float32, same y and
  x. Threshold the nucleus channel ({threshold}) for a mask; {instances}
- {scale}
- {exposure}

# Validation

Kept from the training run: the weights of {weights}, with validation loss {val_loss}.
The nuclei-unet pipeline that trained it scores the validation and test images (pixel IoU and
Dice at the training size, the DSB2018 object metric at full size) in its
`metrics/evaluate.json`; its README gives the figures on DSB2018 stage1_train.
"""


def _weights_kept(payload: dict) -> str:
    """Which weights the model file holds, in words (files from before ``train.keep`` hold
    the best epoch's and record only its number)."""
    if "weights" in payload:
        return str(payload["weights"])
    if "epoch" in payload:
        return f"epoch {payload['epoch']} (lowest val_loss)"
    return "an epoch not recorded"


def _test_image(size: int) -> np.ndarray:
    """A synthetic fluorescence-like test image, ``(size, size, 3) uint8`` (seeded, fixed)."""
    sample = generate_image(0, 0, SyntheticParams(count=1, min_nuclei=12, max_nuclei=12))
    return resize_image(np.ascontiguousarray(sample.image[..., :3]), size)


# bioimage.io's scale_range: (x - low) / (high - low + eps)
EPS = 1e-6


def _network_input(image: np.ndarray, rule: str) -> torch.Tensor:
    """``(H, W, 3) uint8`` -> ``(1, 3, H, W) float32`` as the package's preprocessing gives it:
    divided by 255, or (``percentile``) its percentiles over all channels scaled to 0 and 1 and
    clipped (the float form of :func:`..model.preprocess.stretch`, which rounds to uint8)."""
    if rule != "percentile":
        return to_input(image[None]).contiguous()
    x = image.astype(np.float32)
    low, high = np.percentile(x, PERCENTILES)
    x = np.clip((x - np.float32(low)) / np.float32(high - low + EPS), 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))


def _preprocessing(rule: str) -> tuple[list, str]:
    """The input's bioimage.io preprocessing steps for the normalisation ``rule``, and the
    documentation's words for them."""
    # ends in ensure_dtype: else the spec casts the result back to the input's uint8
    to_float = bmz.EnsureDtypeDescr(kwargs=bmz.EnsureDtypeKwargs(dtype="float32"))
    if rule != "percentile":
        scale = bmz.ScaleLinearDescr(kwargs=bmz.ScaleLinearKwargs(gain=1.0 / DIVIDE_BY))
        return [to_float, scale, to_float], "divide by 255"
    low, high = PERCENTILES
    axes = [bmz.AxisId(a) for a in ("channel", "y", "x")]
    steps = [
        to_float,
        bmz.ScaleRangeDescr(kwargs=bmz.ScaleRangeKwargs(
            axes=axes, min_percentile=low, max_percentile=high, eps=EPS,
        )),
        bmz.ClipDescr(kwargs=bmz.ClipKwargs(min=0.0, max=1.0)),
        to_float,
    ]
    words = (f"each image's percentiles {low:g} and {high:g} (over all channels together) "
             "scaled to 0 and 1, then clipped to [0, 1]")
    return steps, words


def _how_to_use(net: UNet, payload: dict) -> dict[str, str]:
    """The documentation's lines on the output channels, instances and image scale."""
    size = payload.get("input_size", 128)
    if net.out_channels == 2:
        parts = {
            "channels": "channel `nucleus` is the nucleus probability and channel `edge` the "
            "probability of a nucleus's rim, where it touches another nucleus or the background",
            "instances": "nuclei-unet seeds one nucleus per region where nucleus x (1 - edge) "
            "> 0.5 and floods the mask from those seeds (a watershed).",
        }
    else:
        parts = {
            "channels": "the nucleus probability",
            "instances": "nuclei-unet then splits touching nuclei with a distance-transform "
            "watershed.",
        }
    if payload.get("input") != "crops":
        parts["scale"] = (
            f"Trained at {size} x {size} pixels: nuclei-unet resizes whole images to that size "
            "before the network sees them, and resizes the probabilities back."
        )
    elif payload.get("diameter") is None:
        parts["scale"] = f"Trained on {size}-px crops of images at their own scale."
    else:
        parts["scale"] = (
            f"Trained on {size}-px crops of images rescaled so that their median nucleus is "
            f"{payload['diameter']:g} px across: rescale an image so before predicting (nuclei-unet "
            "estimates the factor from the model's own first pass), any size that is a multiple "
            "of the divisor works."
        )
    parts["exposure"] = _exposure_line(payload.get("intensity"))
    return parts


def _exposure_line(intensity: dict | None) -> str:
    """The documentation's line on the exposures the model trained on (the model file's
    :class:`..model.exposure.IntensityRange` by kind, when it has them)."""
    if not intensity:
        return "Exposure: the training images' range was not recorded."
    kinds = "; ".join(
        f"{kind} images: at least {r['top_min']:g} (median {r['top_median']:g})"
        + (f", their median at most {r['background_max']:g} (median {r['background_median']:g})"
           if kind == FLUORESCENCE else "")
        for kind, r in sorted(intensity.items())
    )
    return (
        "Exposure: the 99.9th percentile of the training images' gray values was, for "
        f"{kinds}. nuclei-unet brings an image outside its kind's range into it before "
        "predicting (`predict.exposure: fit`): a fluorescence image's excess background "
        "subtracted, then a dimmer image scaled to the median; do the same here."
    )


def _write_files(
    folder: Path, net: UNet, image: np.ndarray, payload: dict, rule: str
) -> dict[str, Path]:
    """The package's files in ``folder``: weights, test tensors, cover, documentation."""
    files = {name: folder / name for name in (
        "weights.pt", "weights_torchscript.pt", "test_input.npy", "test_output.npy",
        "cover.png", "README.md",
    )}
    torch.save(net.state_dict(), files["weights.pt"])
    x = _network_input(image, rule)
    with torch.inference_mode(), warnings.catch_warnings():
        # the forward's size check is traced as a constant: harmless, sizes are checked by
        # the package's axes (multiples of the divisor)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # TorchScript is deprecated in torch, but it is the format bioimage.io tools run
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(net, x, check_trace=False)
        probs = torch.sigmoid(net(x)).numpy().astype(np.float32)
    traced.save(str(files["weights_torchscript.pt"]))
    np.save(files["test_input.npy"], np.ascontiguousarray(image.transpose(2, 0, 1)[None]))
    np.save(files["test_output.npy"], probs)
    gray = np.repeat((probs[0, 0] * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    Image.fromarray(np.concatenate([image, gray], axis=1)).save(files["cover.png"])
    predict = payload.get("predict") or {}
    files["README.md"].write_text(DOCUMENTATION.format(
        divisor=net.divisor, preprocessing=_preprocessing(rule)[1],
        threshold=f"nuclei-unet used {predict.get('threshold', 0.5)}",
        **_how_to_use(net, payload), weights=_weights_kept(payload),
        val_loss=f"{payload['val_loss']:.4f}" if "val_loss" in payload else "not recorded",
    ))
    return files


def _tensors(
    divisor: int, files: dict[str, Path], channels: tuple[str, ...], rule: str
) -> tuple[bmz.InputTensorDescr, bmz.OutputTensorDescr]:
    size = bmz.ParameterizedSize(min=divisor, step=divisor)
    raw = bmz.InputTensorDescr(
        id=bmz.TensorId("raw"), description="RGB image, uint8",
        axes=[bmz.BatchAxis(), bmz.ChannelAxis(channel_names=[bmz.Identifier(c) for c in "RGB"]),
              bmz.SpaceInputAxis(id=bmz.AxisId("y"), size=size),
              bmz.SpaceInputAxis(id=bmz.AxisId("x"), size=size)],
        test_tensor=bmz.FileDescr(source=files["test_input.npy"]),
        data=bmz.IntervalOrRatioDataDescr(type="uint8"),
        preprocessing=_preprocessing(rule)[0],
    )
    same = {a: bmz.SizeReference(tensor_id=bmz.TensorId("raw"), axis_id=bmz.AxisId(a)) for a in "yx"}
    probability = bmz.OutputTensorDescr(
        id=bmz.TensorId("probability"), description=" and ".join(channels) + " probability",
        axes=[bmz.BatchAxis(),
              bmz.ChannelAxis(channel_names=[bmz.Identifier(c) for c in channels]),
              bmz.SpaceOutputAxis(id=bmz.AxisId("y"), size=same["y"]),
              bmz.SpaceOutputAxis(id=bmz.AxisId("x"), size=same["x"])],
        test_tensor=bmz.FileDescr(source=files["test_output.npy"]),
        data=bmz.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        postprocessing=[bmz.SigmoidDescr()],
    )
    return raw, probability


def describe(model_path: str | Path, folder: Path, image: np.ndarray | None = None) -> bmz.ModelDescr:
    """The bioimage.io description of the model file ``model_path``, its files in ``folder``.

    ``image`` (``(S, S, 3) uint8``, S a multiple of the network's divisor) is the test input;
    by default a synthetic one at the training size.
    """
    net, payload = load_network(model_path)
    if net.head != "sigmoid":
        raise NucleiError(f"{model_path}: only sigmoid models (not train.loss softmax_ce) export")
    rule = normalize_rule(payload, model_path)
    image = _test_image(int(payload.get("input_size", 128))) if image is None else image
    files = _write_files(folder, net, image, payload, rule)
    channels = ("nucleus", "edge") if net.out_channels == 2 else ("nucleus",)
    raw, probability = _tensors(net.divisor, files, channels, rule)
    version = torch.__version__.split("+")[0]
    state_dict = bmz.PytorchStateDictWeightsDescr(
        source=files["weights.pt"], pytorch_version=bmz.Version(version),
        architecture=bmz.ArchitectureFromLibraryDescr(
            import_from="nuclei_unet.model.unet", callable=bmz.Identifier("UNet"),
            kwargs=architecture(payload),
        ),
    )
    torchscript = bmz.TorchscriptWeightsDescr(
        source=files["weights_torchscript.pt"], pytorch_version=bmz.Version(version),
        parent="pytorch_state_dict",
    )
    return bmz.ModelDescr(
        name="nuclei-unet U-Net for nucleus segmentation",
        description="U-Net (Ronneberger et al. 2015) trained by the nuclei-unet DVC pipeline to "
        "segment cell nuclei (2018 Data Science Bowl / BBBC038 images)",
        authors=[bmz.Author(name="nuclei-unet contributors")], cite=CITATIONS,
        license=bmz.LicenseId("MIT"), documentation=bmz.FileDescr(source=files["README.md"]),
        covers=[bmz.FileDescr(source=files["cover.png"])], tags=["nuclei", "segmentation", "unet", "fluorescence",
                                            "dsb2018", "pytorch"],
        inputs=[raw], outputs=[probability],
        weights=bmz.WeightsDescr(pytorch_state_dict=state_dict, torchscript=torchscript),
    )


def export_bioimageio(model_path: str | Path, out: str | Path) -> Path:
    """Write the bioimage.io package (a zip) of the model file ``model_path`` to ``out``,
    atomically; ``out`` must end in ``.zip`` and may not be the model file itself."""
    out = require_suffix(out, (".zip",), "the bioimage.io package")
    if out.resolve() == Path(model_path).resolve():
        raise NucleiError(f"--out {out} is the model file: the package would replace it; "
                          "give the package another name")
    with tempfile.TemporaryDirectory(prefix="nuclei-unet-bmz-") as tmp:
        descr = describe(model_path, Path(tmp))
        with atomic_path(out) as partial:
            save_bioimageio_package(descr, output_path=partial)
    log.info("wrote the bioimage.io package %s", out)
    return out
