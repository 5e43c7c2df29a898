"""``nuclei-unet predict``: segment your own images with a trained model.

    nuclei-unet predict IMAGE_OR_DIR... --model models/model.pt --out results/

For each image (PNG, TIF or JPG; 8- or 16-bit; gray, RGB or RGBA; any size) it writes
``<stem>_mask.png`` (uint8 0/255) and ``<stem>_labels.png`` (uint16 labels), both at the image's
own size, and one row per nucleus in ``objects.csv``. An unreadable file is reported and skipped;
the others go on, and the exit status is 2 when any file failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from .checkpoint import load_checkpoint
from .dataset import IMAGE_SUFFIXES
from .errors import NucleiError
from .io import read_image
from .objects import ObjectsTable
from .runtime import resolve_device
from .segment import SegmentOptions, save_segmentation, segment

log = logging.getLogger("nuclei_unet")


def find_images(inputs: Sequence[str]) -> list[Path]:
    """Files given, plus the images inside folders given (not recursive), in sorted order."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nuclei-unet", description="Nucleus segmentation with a U-Net.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="segment images with a trained model")
    # every option belongs to the predict command
    p.add_argument("inputs", nargs="+", help="image files or folders of images")
    p.add_argument("--model", required=True, help="model file (models/model.pt)")
    p.add_argument("--out", required=True, help="output folder")
    defaults = SegmentOptions()
    p.add_argument("--threshold", type=float, default=defaults.threshold)
    p.add_argument("--mode", choices=("resize", "tile"), default=defaults.mode)
    p.add_argument("--tile-scale", type=float, default=defaults.tile_scale)
    p.add_argument("--instances", choices=("watershed", "components"), default=defaults.instances)
    p.add_argument("--min-size", type=int, default=defaults.min_size)
    p.add_argument("--min-distance", type=int, default=defaults.min_distance)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return parser


def predict_command(args: argparse.Namespace) -> int:
    """Run ``predict``; returns the exit status (0, or 2 when some files failed)."""
    if not 0.0 < args.threshold < 1.0:
        raise NucleiError(f"--threshold must be in (0, 1), got {args.threshold}")
    options = SegmentOptions(
        mode=args.mode, threshold=args.threshold, tile_scale=args.tile_scale,
        instances=args.instances, min_size=args.min_size, min_distance=args.min_distance,
    )
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.model)
    model = checkpoint.model.to(device)
    images = find_images(args.inputs)
    if not images:
        raise NucleiError(f"no images found in {' '.join(args.inputs)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = ObjectsTable()
    failed = []
    for path in tqdm(images, desc="segment", unit="img"):
        try:
            image = read_image(path)
        except NucleiError as exc:  # report and go on with the other files
            log.error("skipped: %s", exc)
            failed.append(path)
            continue
        mask, labels = segment(model, image, options, checkpoint.input_size, device)
        save_segmentation(out, path.stem, mask, labels)
        table.add(path.name, labels, image)
    table.write(out / "objects.csv")
    log.info(
        "segmented %d of %d images into %s (%d nuclei)",
        len(images) - len(failed), len(images), out, table.count,
    )
    if failed:
        log.error("%d file(s) could not be read: %s", len(failed), ", ".join(map(str, failed)))
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nuclei-unet`` console script."""
    logging.basicConfig(level=logging.INFO, format="[nuclei-unet] %(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    try:
        return predict_command(args)
    except NucleiError as exc:
        log.error("error: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
