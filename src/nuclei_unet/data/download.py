"""The download stage: the synthetic generator, a local zip, or the real data from the network."""

from __future__ import annotations

import logging
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from nuclei_unet.config.schema import DownloadParams
from nuclei_unet.data.fetch import (
    BBBC038_URL,
    STAGE1_TRAIN_SHA256,
    default_cache_dir,
    fetch,
    fetch_kaggle,
)
from nuclei_unet.data.synthetic import write_dataset
from nuclei_unet.errors import DataError
from nuclei_unet.io.dsb import list_samples
from nuclei_unet.io.files import atomic_path, check_sha256

log = logging.getLogger(__name__)

# <prefix><id>/images/<id>.png: the entry that marks a DSB image folder
_IMAGE_ENTRY = re.compile(r"^(?P<prefix>(?:[^/]+/)*?)(?P<id>[^/]+)/images/(?P=id)\.[A-Za-z]+$")


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
        check_sha256(zip_path, sha256, zip_path)
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


def download(params: DownloadParams, seed: int, out_dir: str | Path) -> None:
    """Write the dataset that ``params.source`` names into ``out_dir`` (DSB layout)."""
    if params.source == "synthetic":
        write_dataset(out_dir, seed, params.synthetic)
        return
    if params.source == "zip":
        extract_zip(params.path, out_dir, params.sha256)
        return
    cache = Path(params.cache_dir) if params.cache_dir else default_cache_dir()
    # the known release is pinned for the official sources; a url is checked only if asked
    if params.source == "url":
        archive = fetch(params.url, cache, params.sha256, params.timeout, params.retries, params.backoff)
        extract_zip(archive, out_dir)
        return
    sha256 = params.sha256 or STAGE1_TRAIN_SHA256
    if params.source == "bbbc038":
        archive = fetch(BBBC038_URL, cache, sha256, params.timeout, params.retries, params.backoff)
    else:
        archive = fetch_kaggle(cache, sha256)
    extract_zip(archive, out_dir)
