"""Build a stage1_train zip whose training images carry the community's corrected masks.

The DSB2018 community published corrected stage1_train masks (Konstantin Lopuhin's
``kaggle-dsbowl-2018-dataset-fixes``, CC0: masks redrawn, split or merged in 116 images, 6
images dropped). This script takes the original zip and that repository (its folder, or the
zip GitHub serves for a commit) and writes a new zip in which only the images of the chosen
splits (default: ``train`` of ``data/split.json``) take the corrected masks. Every other
image, and every image the fixes drop, keeps its original masks, so the split is unchanged
and val and test are still scored against the original truth.

A few corrected masks share a pixel or two with a neighbour, which ``prepare`` rejects; each
such pixel is kept by the earlier mask in sorted order (the order ``prepare`` labels them in)
and taken out of the later one, with a line naming the file.

    python benchmarks/label_fixes.py --original ../shared/data/stage1_train.zip \\
        --fixes kaggle-dsbowl-2018-dataset-fixes-30354551.zip --split data/split.json \\
        --out stage1_train_trainfixed.zip
    dvc exp run -n fixes_s42 -S download.path=stage1_train_trainfixed.zip -S download.sha256=...

Figures: README, "Corrected training masks".
"""

from __future__ import annotations

import argparse
import io
import re
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from nuclei_unet.errors import DataError
from nuclei_unet.io.files import atomic_path, read_json, sha256_file
from nuclei_unet.io.png import encode_gray

# <id>/masks/<name>.png, under any top folder (the GitHub archive adds one)
FIXED_MASK = re.compile(r"(?:^|/)stage1_train/([^/]+)/masks/([^/]+\.png)$")
ORIGINAL_MASK = re.compile(r"^([^/]+)/masks/([^/]+\.png)$")


def read_fixed_masks(fixes: Path) -> dict[str, dict[str, bytes]]:
    """The fixes' masks, ``{image id: {mask file name: PNG bytes}}``, from their folder or zip."""
    masks: dict[str, dict[str, bytes]] = {}
    if fixes.is_dir():
        entries = ((p.relative_to(fixes).as_posix(), p) for p in fixes.rglob("*.png"))
        for name, path in entries:
            if match := FIXED_MASK.search(name):
                masks.setdefault(match[1], {})[match[2]] = path.read_bytes()
    elif zipfile.is_zipfile(fixes):
        with zipfile.ZipFile(fixes) as archive:
            for name in archive.namelist():
                if match := FIXED_MASK.search(name):
                    masks.setdefault(match[1], {})[match[2]] = archive.read(name)
    else:
        raise DataError(f"{fixes}: neither a folder nor a zip of the label fixes")
    if not masks:
        raise DataError(f"{fixes}: no stage1_train/<id>/masks/*.png inside")
    return masks


def separate(masks: dict[str, bytes], where: str) -> tuple[dict[str, bytes], list[str]]:
    """Take each pixel shared by two masks out of the later one (sorted by name).

    Returns the masks (re-encoded only where they changed; a mask left empty is dropped) and
    one plain line per change, naming ``where/<mask name>``.
    """
    claimed: np.ndarray | None = None
    out: dict[str, bytes] = {}
    notes: list[str] = []
    for name in sorted(masks):
        pixels = np.asarray(Image.open(io.BytesIO(masks[name])).convert("L")) > 0
        if claimed is None:
            claimed = np.zeros(pixels.shape, dtype=bool)
        if pixels.shape != claimed.shape:
            raise DataError(f"{where}/{name}: mask is {pixels.shape}, earlier ones {claimed.shape}")
        shared = pixels & claimed
        if not shared.any():
            out[name] = masks[name]
        elif (pixels & ~claimed).any():
            out[name] = encode_gray(np.where(pixels & ~claimed, 255, 0).astype(np.uint8))
            notes.append(f"{where}/{name}: {int(shared.sum())} pixel(s) shared with an earlier "
                         "mask taken out")
        else:
            notes.append(f"{where}/{name}: lies wholly inside earlier masks, dropped")
        claimed |= pixels
    return out, notes


def build(original: Path, fixed: dict[str, dict[str, bytes]], ids: set[str], out: Path) -> dict:
    """Write ``out``: ``original`` with the masks of ``ids`` replaced by ``fixed``'s.

    Returns counts: ``replaced`` (ids whose masks differ in the fixes), ``unchanged``,
    ``kept`` (ids the fixes drop, their original masks kept), ``notes`` (overlap lines).
    """
    with zipfile.ZipFile(original) as source:
        entries = source.infolist()
        current: dict[str, dict[str, bytes]] = {}
        for info in entries:
            if (match := ORIGINAL_MASK.match(info.filename)) and match[1] in ids:
                current.setdefault(match[1], {})[match[2]] = source.read(info)
        missing = ids - {info.filename.split("/")[0] for info in entries}
        if missing:
            raise DataError(f"{original}: no images {sorted(missing)[:3]} named in the split")
        replace = {i for i in ids if i in fixed and fixed[i] != current.get(i)}
        counts = {"replaced": len(replace), "unchanged": len(ids & fixed.keys()) - len(replace),
                  "kept": len(ids - fixed.keys()), "notes": []}
        with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
            for info in entries:
                match = ORIGINAL_MASK.match(info.filename)
                if not (match and match[1] in replace):
                    target.writestr(info, source.read(info))
            for image_id in sorted(replace):
                masks, notes = separate(fixed[image_id], image_id + "/masks")
                counts["notes"] += notes
                for name, data in sorted(masks.items()):
                    target.writestr(f"{image_id}/masks/{name}", data)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--original", type=Path, required=True, help="stage1_train.zip")
    parser.add_argument("--fixes", type=Path, required=True,
                        help="the label fixes: their repository's folder or GitHub zip")
    parser.add_argument("--split", type=Path, default=Path("data/split.json"),
                        help="the split stage's output (ids per split)")
    parser.add_argument("--splits", default="train",
                        help="comma-separated splits whose images take the fixes")
    parser.add_argument("--out", type=Path, required=True, help="the zip to write")
    args = parser.parse_args(argv)
    split = read_json(args.split)
    names = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = [s for s in names if s not in split]
    if unknown:
        raise SystemExit(f"{args.split}: no split {unknown} (it has {sorted(split)})")
    ids = {i for s in names for i in split[s]}
    print(f"[label_fixes] reading the fixes from {args.fixes}")
    fixed = read_fixed_masks(args.fixes)
    print(f"[label_fixes] {len(fixed)} images in the fixes; writing {args.out}")
    counts = build(args.original, fixed, ids, args.out)
    for note in counts["notes"]:
        print(f"[label_fixes] {note}")
    print(f"[label_fixes] {len(ids)} images of {'+'.join(names)}: {counts['replaced']} take "
          f"corrected masks, {counts['unchanged']} unchanged, {counts['kept']} dropped by the "
          f"fixes keep their own; sha256 {sha256_file(args.out)}")


if __name__ == "__main__":
    main()
