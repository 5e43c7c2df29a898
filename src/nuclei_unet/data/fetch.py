"""Robust downloads of the real data: retries, HTTP Range resume, sha256 checks, a cache.

Streaming with progress, timeouts, retries with backoff, a temporary name renamed into place
only when complete and verified, and a cache outside ``data/``.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from nuclei_unet.errors import DataError
from nuclei_unet.io.files import check_sha256, sha256_file

log = logging.getLogger(__name__)

# The stage1_train release of the 2018 Data Science Bowl (BBBC038v1)
STAGE1_TRAIN_SHA256 = "6690001b43a98a8e0591ad247acf20632346b0318996c6e5e36fc50cdd25ead5"
BBBC038_URL = "https://data.broadinstitute.org/bbbc/BBBC038/stage1_train.zip"
KAGGLE_COMPETITION = "data-science-bowl-2018"
KAGGLE_FILE = "stage1_train.zip"
CHUNK = 1 << 16


class RetryableError(Exception):
    """A transfer failed in a way that another try may fix (timeout, reset, short read)."""


def default_cache_dir() -> Path:
    """``$NUCLEI_UNET_CACHE``, else ``$XDG_CACHE_HOME/nuclei-unet``, else ``~/.cache/nuclei-unet``."""
    if env := os.environ.get("NUCLEI_UNET_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nuclei-unet"


def cache_name(url: str) -> str:
    """A cache file name unique to ``url`` that keeps its base name readable."""
    base = Path(urllib.parse.urlparse(url).path).name or "download"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{base}"


def _verify(path: Path, sha256: str | None, source: str) -> None:
    """Check a finished transfer; a mismatch removes it (it must not be resumed or reused)."""
    if sha256 is None:
        return
    try:
        check_sha256(path, sha256, source)
    except DataError:
        path.unlink()
        raise


def _cached(path: Path, sha256: str | None) -> bool:
    """Whether ``path`` is a usable cached download (present, and matching ``sha256`` if given)."""
    return path.exists() and (sha256 is None or sha256_file(path) == sha256.lower())


def _transfer(url: str, part: Path, timeout: float) -> None:
    """One attempt: continue ``part`` with a Range request, or start over if not supported."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "nuclei-unet", "Range": f"bytes={offset}-"} if offset else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (user's URL)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # our partial file is no prefix the server knows
            part.unlink()
            raise RetryableError(f"HTTP 416 for a resume at byte {offset}") from exc
        if exc.code in (408, 429) or exc.code >= 500:
            raise RetryableError(f"HTTP {exc.code}") from exc
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise RetryableError(str(getattr(exc, "reason", exc))) from exc
    with response:
        status = getattr(response, "status", 200)
        resumed = offset and status == 206
        if offset and not resumed:
            log.info("server ignored the range request: starting over")
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc="download"
        ) as bar:
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
            except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                raise RetryableError(f"transfer broke off ({exc.__class__.__name__})") from exc
    size = part.stat().st_size
    if total is not None and size != total:
        raise RetryableError(f"got {size} of {total} bytes")


def fetch(
    url: str,
    cache_dir: str | Path,
    sha256: str | None = None,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` (http, https or file) into ``cache_dir`` and return the file's path.

    A file already in the cache (and matching ``sha256``) is reused. Transfers go to a
    ``.part`` file, resumed with HTTP Range after a failure, and are renamed into place only when
    complete and verified; failures are retried ``retries`` times with exponential backoff.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / cache_name(url)
    if _cached(final, sha256):
        log.info("using the cached %s", final)
        return final
    if final.exists():
        log.info("cached %s does not match its sha256: downloading again", final)
        final.unlink()
    part = final.with_name(final.name + ".part")
    log.info("downloading %s", url)
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout)
            break
        except RetryableError as exc:
            if attempt == retries:
                raise DataError(f"{url}: download failed after {retries + 1} tries: {exc}") from exc
            wait = backoff * 2**attempt
            log.warning("download try %d failed (%s); retrying in %.1f s", attempt + 1, exc, wait)
            time.sleep(wait)
    _verify(part, sha256, url)
    os.replace(part, final)
    return final


def kaggle_credentials_present() -> bool:
    """Whether the kaggle client can authenticate: env vars or a kaggle.json."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    return (config_dir / "kaggle.json").is_file()


def fetch_kaggle(cache_dir: str | Path, sha256: str | None = STAGE1_TRAIN_SHA256) -> Path:
    """Download stage1_train.zip of the DSB2018 competition with the official kaggle client."""
    cache_dir = Path(cache_dir)
    final = cache_dir / f"kaggle-{KAGGLE_FILE}"
    if _cached(final, sha256):
        log.info("using the cached %s", final)
        return final
    if not kaggle_credentials_present():
        raise DataError(
            "kaggle: no credentials: put kaggle.json in ~/.kaggle (or $KAGGLE_CONFIG_DIR) or set "
            "KAGGLE_USERNAME and KAGGLE_KEY, and accept the competition rules on its page"
        )
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise DataError("kaggle: the kaggle package is not installed (pip install kaggle)") from exc
    api = KaggleApi()
    api.authenticate()
    work = cache_dir / "kaggle.part"
    work.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s of %s with the kaggle client", KAGGLE_FILE, KAGGLE_COMPETITION)
    api.competition_download_file(KAGGLE_COMPETITION, KAGGLE_FILE, path=str(work), quiet=False)
    got = work / KAGGLE_FILE
    if not got.exists():
        raise DataError(f"kaggle: the client did not write {got}")
    _verify(got, sha256, "kaggle")
    os.replace(got, final)
    return final
