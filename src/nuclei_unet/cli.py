"""The ``nuclei-unet`` command: segment your own images with a trained model.

    nuclei-unet predict IMAGE_OR_DIR... --model models/model.pt --out results/

For each image (PNG, TIF or JPG; 8-, 16- or 32-bit, integer or float; gray, RGB or RGBA; any
size; one channel of a multi-channel TIFF with --channel) it writes, at the image's own size:
<stem>_mask.png (uint8 0/255), <stem>_labels.png (uint16 labels), <stem>_labels.tif
(compressed TIFF, uint16 or uint32, with the input TIFF's pixel size), <stem>_rois.zip (one
ImageJ polygon ROI per nucleus, named by label) and <stem>_overlay.png (numbered, coloured
outlines); --format picks some of them. objects.csv gets one row per nucleus. The settings
are those stored in the model file by the predict stage (so the command segments as the
pipeline did); each flag overrides one. An unreadable file is reported and skipped; the
others go on, and the exit status is 2 when any file failed. Nothing is segmented when --out
is a folder that holds an input (a result could replace an image, say your own
cells_mask.png) or when two inputs share a name (cells.png and cells.tif would write the
same files).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import typing
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nuclei_unet.config.load import build
from nuclei_unet.config.schema import PredictParams
from nuclei_unet.errors import NucleiError, ParamsError, TooLargeError
from nuclei_unet.export.images import FORMATS, OBJECTS_TABLE, output_paths, write_formats
from nuclei_unet.export.plots_page import write_page
from nuclei_unet.infer.objects import ObjectsTable
from nuclei_unet.infer.probs import output_maps
from nuclei_unet.infer.segment import segment
from nuclei_unet.io.images import IMAGE_SUFFIXES, read_image_and_pixel_size
from nuclei_unet.model.checkpoint import Checkpoint, load_checkpoint
from nuclei_unet.runtime import resolve_device, resolve_precision
from nuclei_unet.stage import console_logging

log = logging.getLogger("nuclei_unet")

# stage-only settings: which splits of the pipeline's data to segment
_NOT_FLAGS = {"full_res_splits"}


def find_images(inputs: Sequence[str]) -> list[Path]:
    """Files given, plus the images inside folders given (not recursive), in sorted order; a
    file given twice (or given and inside a folder given) is listed once, where first met."""
    found: dict[Path, Path] = {}
    for item in inputs:
        path = Path(item)
        listed = (sorted(p for p in path.iterdir()
                         if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
                  if path.is_dir() else [path])
        for file in listed:
            found.setdefault(file.resolve(), file)
    return list(found.values())


def no_images_message(inputs: Sequence[str]) -> str:
    """Why :func:`find_images` found nothing, with a hint when a folder given has subfolders
    (a DSB-style tree keeps its images in ``<id>/images/``, which is then the hint)."""
    for item in inputs:
        folder = Path(item)
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if subfolders:
            below = "*/images/" if (subfolders[0] / "images").is_dir() else "*/"
            return (f"no images found in {' '.join(inputs)} (subfolders are not searched: "
                    f"give them too, e.g. {folder / below})")
    return f"no images found in {' '.join(inputs)}"


def check_outputs(images: Sequence[Path], out: Path, formats: Collection[str]) -> None:
    """Refuse, before any work, a run whose results could replace an input or one another.

    Raises NucleiError when ``out`` is the folder of an input (a result such as
    ``cells_mask.png`` could be a file the user gave, and a later run would read the results
    as images) or when two inputs would write the same result (``cells.png`` and
    ``cells.tif``, or two folders' ``cells.png``).
    """
    out_dir = out.resolve()
    for path in images:
        if path.parent.resolve() == out_dir:
            raise NucleiError(
                f"--out {out} holds the input {path}: its results could replace images there "
                "(or be read as images by the next run); choose another --out folder"
            )
    owner: dict[Path, Path] = {}
    for path in images:
        for target in output_paths(out_dir, path.stem, formats):
            if target in owner:
                raise NucleiError(
                    f"{owner[target]} and {path} would both write {target.name}: rename one, or "
                    "segment them into different --out folders"
                )
            owner[target] = path


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _channel(text: str) -> int:
    """``--channel``'s value: a 0-based index."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a channel index (0, 1, 2, ...)")
    return int(text)


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per predict setting, typed and documented from :class:`PredictParams`; each
    defaults to None, meaning "the model file's value"."""
    for name, field in PredictParams.model_fields.items():
        if name in _NOT_FLAGS:
            continue
        default = f"(model file's value; else {field.default})"
        kwargs: dict[str, Any] = {"default": None, "help": f"{field.description} {default}"}
        if field.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(field.annotation) is typing.Literal:
            kwargs["choices"] = typing.get_args(field.annotation)
        elif typing.get_origin(field.annotation) is tuple:  # e.g. scales: --scales 1 1.25
            item = typing.get_args(field.annotation)[0]
            kwargs.update(type=item, nargs="+", metavar=item.__name__.upper())
        else:
            kwargs["type"] = field.annotation
            kwargs["metavar"] = field.annotation.__name__.upper()
        parser.add_argument(_flag(name), **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nuclei-unet", description="Nucleus segmentation with a U-Net."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "predict", help="segment images with a trained model",
        description=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="+", help="image files or folders of images (not their subfolders)"
    )
    p.add_argument("--model", required=True, help="model file (models/model.pt)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--format", action="append", choices=list(FORMATS), dest="formats",
        help="a file to write per image, repeatable (default: all of them)",
    )
    p.add_argument(
        "--channel", type=_channel, metavar="INT",
        help="segment this channel (0-based) of each image, in gray: the nuclear stain of a "
        "multi-channel TIFF (C axis, or its pages), or R, G or B of a colour image (default: "
        "the whole image; a TIFF of several channels is then refused, not read as its first)",
    )
    add_setting_flags(p)
    t = sub.add_parser(
        "plots-template", help="write the page template that lets dvc plots show work offline",
        description="Write the HTML template .dvc/config names for `dvc plots show`: DVC's page "
        "with Vega, Vega-Lite and vega-embed inside it instead of loaded from a CDN.",
    )
    t.add_argument("--out", default=".dvc/offline_plots.html", help="(default: %(default)s)")
    e = sub.add_parser(
        "export", help="write a bioimage.io model package of a model file",
        description="Write a bioimage.io model package (zip): TorchScript weights and the state "
        "dict, axes, preprocessing, a test input and its output, a cover, citations. Needs the "
        "bioimageio extra: pip install 'nuclei-unet[bioimageio]'.",
    )
    e.add_argument("model", help="model file (models/model.pt)")
    e.add_argument("--out", default="nuclei_unet.bioimageio.zip", help="(default: %(default)s)")
    return parser


def default_settings(checkpoint: Checkpoint) -> PredictParams:
    """The defaults for a model file without predict settings: params.yaml's, except that a
    model trained on whole 128-px images is resized (not scaled) and one without the edge
    class split by the distance-transform watershed."""
    update = {}
    if not checkpoint.scale.native:
        update["mode"] = "resize"
    if output_maps(checkpoint.model) == 1:
        update["instances"] = "watershed"
    return PredictParams().model_copy(update=update)


def settings(args: argparse.Namespace, stored: PredictParams) -> PredictParams:
    """The model file's predict settings (or :func:`default_settings`), flags given on top."""
    merged = stored.model_dump()
    merged.update({k: v for k, v in vars(args).items() if k in merged and v is not None})
    try:
        return build(PredictParams, merged, "predict")
    except ParamsError as exc:  # name the flag, not the params.yaml key
        key, message = str(exc).split(": ", 1)
        raise ParamsError(f"{_flag(key.split('.', 1)[1])}: {message}") from None


def checkpoint_settings(args: argparse.Namespace, checkpoint: Checkpoint) -> PredictParams:
    """:func:`settings` over the model file's own, or over :func:`default_settings` for a file
    without any."""
    return settings(args, checkpoint.predict or default_settings(checkpoint))


def predict_command(args: argparse.Namespace) -> int:
    """Run ``predict``; returns the exit status (0, or 2 when some files failed)."""
    checkpoint = load_checkpoint(args.model)
    if checkpoint.predict is None:
        log.info("%s has no predict settings: using the defaults", args.model)
    options = checkpoint_settings(args, checkpoint)
    device = resolve_device(options.device)
    dtype = resolve_precision(options.precision, device)
    model = checkpoint.model.to(device)
    images = find_images(args.inputs)
    if not images:
        raise NucleiError(no_images_message(args.inputs))
    out = Path(args.out)
    formats = args.formats or list(FORMATS)
    check_outputs(images, out, formats)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a read-only parent
        raise NucleiError(f"--out {out}: cannot make that folder ({exc.strerror})") from exc
    table = ObjectsTable()
    failed = []
    for path in tqdm(images, desc="segment", unit="img"):
        try:
            image, pixel_size = read_image_and_pixel_size(path, args.channel)
        except NucleiError as exc:  # report and go on with the other files
            log.error("skipped: %s", exc)
            failed.append(path)
            continue
        try:
            mask, labels = segment(
                model, image, options, checkpoint.input_size, device, dtype, checkpoint.scale,
                path.name,
            )
        except TooLargeError as exc:  # this image only: the next may fit
            log.error("skipped: %s: %s", path, exc)
            failed.append(path)
            continue
        # a full disk or a folder gone read-only: a NucleiError naming the file (atomic_path)
        write_formats(out, path.stem, image, mask, labels, formats, pixel_size)
        table.add(path.name, labels, image)
    table.write(out / OBJECTS_TABLE)
    log.info(
        "segmented %d of %d images into %s (%d nuclei)",
        len(images) - len(failed), len(images), out, table.count,
    )
    if failed:
        log.error(
            "%d file(s) could not be read or segmented: %s",
            len(failed), ", ".join(map(str, failed)),
        )
        return 2
    return 0


def export_command(args: argparse.Namespace) -> int:
    """Run ``export``: the bioimage.io package of ``args.model``."""
    if importlib.util.find_spec("bioimageio") is None:
        raise NucleiError("export needs bioimageio.spec: pip install 'nuclei-unet[bioimageio]'")
    # imported here: bioimageio is an optional dependency
    from nuclei_unet.export.bioimageio import export_bioimageio

    export_bioimageio(args.model, args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nuclei-unet`` console script."""
    args = _parser().parse_args(argv)
    with console_logging("nuclei-unet"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; a NucleiError is one logged line and exit status 1."""
    try:
        if args.command == "plots-template":
            log.info("wrote %s", write_page(args.out))
            return 0
        if args.command == "export":
            return export_command(args)
        return predict_command(args)
    except NucleiError as exc:
        log.error("error: %s", exc)
        return 1
