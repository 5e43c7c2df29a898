"""Files: atomic writes, checksums, JSON, whole-file reads with errors that name the file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nuclei_unet.errors import DataError, NucleiError

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (another user's counts)."""
    try:
        os.kill(pid, 0)  # signal 0: the existence check, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries that runs killed before they could clean up (``kill -9``, the
    out-of-memory killer) left in ``folder``; the paths removed.

    Only :func:`atomic_path`'s own (folders named ``.<name>.<pid>@<host>.<random>.tmp``) of
    this host whose process is gone: a running writer's, another host's (a shared disk) and
    anything else are kept.
    """
    own = re.compile(rf"\..+\.(\d+)@{re.escape(socket.gethostname())}\.[^.]+\.tmp")
    with os.scandir(folder) as entries:
        stale = [
            Path(e.path) for e in entries
            if e.name.endswith(".tmp") and (match := own.fullmatch(e.name))
            and e.is_dir(follow_symlinks=False) and not _alive(int(match[1]))
        ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by a run that was killed", path)
    return stale


# the folders this process has swept: once each, as a folder of N outputs would otherwise be
# listed N times (quadratic in N for a user's folder of thousands of images)
_swept: set[Path] = set()


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success move it onto ``dest``.

    Works for files and folders: a folder replaces the folder of that name (a stage's output),
    but a file never replaces a folder, nor a folder a file (say a user's folder given as the
    name of a file to write): that is a NucleiError naming it, and ``dest`` stays. A link at
    ``dest`` is replaced itself, by a file or a folder, never what it points to. On an
    exception the temporary is removed and ``dest`` is left as it was, so an interrupted stage
    never leaves a half-written output. The temporary's name says whose it is, so that a later
    process's first write beside it removes one that a killed run left
    (:func:`remove_stale_temporaries`). An OSError on the way (a full disk, a read-only folder,
    a file where a folder of the path should be) is a NucleiError naming ``dest``.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        folder = dest.parent.resolve()
        if folder not in _swept:
            remove_stale_temporaries(dest.parent)  # the folder as given: the log names it so
            _swept.add(folder)
        owner = f"{os.getpid()}@{socket.gethostname()}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{owner}.", suffix=".tmp", dir=dest.parent))
    except OSError as exc:
        raise _not_written(dest, exc) from exc
    target = tmp / dest.name
    try:
        yield target
        # a link is replaced itself, whatever it points to (DVC's symlink cache: writing
        # through it would change the cache)
        if dest.is_symlink():
            if target.is_dir():
                dest.unlink()  # rename(2) puts a folder over a folder only
        elif dest.exists() and dest.is_dir() != target.is_dir():
            kinds = ("a folder", "a file") if dest.is_dir() else ("a file", "a folder")
            raise NucleiError(f"{dest} is {kinds[0]}: not replaced by {kinds[1]}; give another name")
        elif dest.is_dir():
            shutil.rmtree(dest)
        os.replace(target, dest)
    except OSError as exc:
        raise _not_written(dest, exc) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _not_written(dest: Path, exc: OSError) -> NucleiError:
    """One line for an OSError met while writing ``dest``: its reason, and the file the system
    named when it named one (the body may have been reading an input)."""
    where = f": {exc.filename}" if exc.filename else ""
    return NucleiError(f"{dest}: not written ({exc.strerror or exc}{where})")


def require_suffix(path: str | Path, suffixes: tuple[str, ...], what: str) -> Path:
    """``path`` as a Path when its name ends in one of ``suffixes`` (any case); else a
    NucleiError, before any work: a name of another kind is likely a user's own file (``--out
    cells.png`` for a zip would replace their image)."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise NucleiError(
            f"--out {path}: {what} is written to a {' or '.join(suffixes)} file; give such a name"
        )
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: str | Path, expected: str, source: str | Path) -> None:
    """Raise a DataError naming ``source`` when ``path``'s sha256 is not ``expected`` (any case)."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise DataError(f"{source}: sha256 is {actual}, expected {expected.lower()}")


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or malformed file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def read_bytes(path: str | Path) -> bytes:
    """A whole file's bytes, with fewer system calls than ``open().read()`` (the 29,461 DSB
    masks are small files, and this is a third faster on them). A missing or unreadable file
    is a DataError naming it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size)
        while len(data) < size:  # a short read, which POSIX allows: ask for the rest
            more = os.read(fd, size - len(data))
            if not more:
                break  # the file shrank meanwhile: the decoder then reports it truncated
            data += more
        return data
    except OSError as exc:  # e.g. a folder where a file should be
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    finally:
        os.close(fd)

