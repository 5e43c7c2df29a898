"""The download stage's sources: the synthetic generator, or a local zip in the DSB layout."""

from __future__ import annotations

import hashlib
import logging
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .dataset import list_samples
from .errors import DataError
from .io import atomic_path

log = logging.getLogger(__name__)

# <prefix><id>/images/<id>.png: the entry that marks a DSB image folder
_IMAGE_ENTRY = re.compile(r"^(?P<prefix>(?:[^/]+/)*?)(?P<id>[^/]+)/images/(?P=id)\.[A-Za-z]+$")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check_entry(zip_path: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    """Refuse entries that could write outside the target (zip-slip) or are symlinks."""
    name = info.filename
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or path.is_absolute():
        raise DataError(f"{zip_path}: entry '{name}' has an absolute path")
    if ".." in path.parts or "\\" in name:
        raise DataError(f"{zip_path}: entry '{name}' points outside the archive folder")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DataError(f"{zip_path}: entry '{name}' is a symbolic link")
    return path


def extract_zip(zip_path: str | Path, out_dir: str | Path, sha256: str | None = None) -> int:
    """Unpack a DSB-layout zip into ``out_dir`` atomically; returns the number of images.

    The zip may hold the id folders at its top level or under one folder. A wrong checksum,
    an unsafe entry or a zip without the layout is a DataError and leaves ``out_dir`` untouched.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise DataError(f"{zip_path}: zip file not found")
    if sha256 is not None:
        log.info("checking sha256 of %s", zip_path)
        actual = sha256_file(zip_path)
        if actual != sha256.lower():
            raise DataError(f"{zip_path}: sha256 is {actual}, expected {sha256.lower()}")
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{zip_path}: not a valid zip file ({exc})") from exc
    with archive, atomic_path(out_dir) as tmp:
        infos = archive.infolist()
        paths = [_check_entry(zip_path, info) for info in infos]
        prefixes = {m["prefix"] for p in paths if (m := _IMAGE_ENTRY.match(str(p)))}
        if not prefixes:
            raise DataError(f"{zip_path}: no <id>/images/<id>.png entries: not the DSB2018 layout")
        if len(prefixes) > 1:
            raise DataError(f"{zip_path}: image folders under several roots: {sorted(prefixes)[:3]}")
        (prefix,) = prefixes
        tmp.mkdir()
        log.info("unpacking %d entries of %s", len(infos), zip_path)
        for info, path in tqdm(list(zip(infos, paths)), desc="unzip", unit="file"):
            rel = str(path)[len(prefix):] if str(path).startswith(prefix) else None
            if not rel or info.is_dir():
                continue
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        n_images = len(list_samples(tmp))
    log.info("unpacked %d images into %s", n_images, out_dir)
    return n_images
