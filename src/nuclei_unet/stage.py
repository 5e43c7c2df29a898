"""What every stage script shares: arguments, logging, timing and one-line errors (the
``nuclei-unet`` command shares the logging)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator

from tqdm.contrib.logging import logging_redirect_tqdm

from nuclei_unet.errors import NucleiError


@contextlib.contextmanager
def console_logging(name: str) -> Iterator[None]:
    """INFO and above to stderr as ``[name] message``, each line on its own: a line logged
    while a progress bar is drawn (an image fitted to the training exposure, say) is written
    above the bar instead of being glued to its end."""
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    with logging_redirect_tqdm():
        yield


class Stopped(BaseException):
    """SIGTERM reached a stage: raised where it was, so every ``finally`` runs."""


def _stop_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, a CI timeout, a queue stopping its job) into :class:`Stopped`,
    as Ctrl-C is a KeyboardInterrupt: the atomic writes' ``finally`` then remove their
    temporaries instead of leaving a half-written copy beside the output. Worker processes
    forked later still die at once, as SIGTERM's default has them."""
    owner = os.getpid()

    def stop(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Stopped

    signal.signal(signal.SIGTERM, stop)


def run_stage(name: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], None]) -> None:
    """Parse arguments and run ``body``; a NucleiError ends the stage with a one-line message,
    SIGTERM or Ctrl-C with one line and the shell's exit status (143, 130), its partial
    outputs removed.

    Anything else is a bug and keeps its traceback.
    """
    with console_logging(name):
        args = parser.parse_args()
        start = time.perf_counter()
        _stop_on_sigterm()
        try:
            body(args)
        except NucleiError as exc:
            print(f"[{name}] error: {exc}", file=sys.stderr)
            sys.exit(1)
        except (Stopped, KeyboardInterrupt) as exc:
            stopped = isinstance(exc, Stopped)
            signum, how = (signal.SIGTERM, "SIGTERM") if stopped else (signal.SIGINT, "Ctrl-C")
            print(f"[{name}] stopped ({how}); no partial output left", file=sys.stderr)
            sys.exit(128 + signum)
        # the per-stage wall times in README come from these lines
        logging.getLogger(__name__).info("done in %.1f s", time.perf_counter() - start)


# the paths stages pass each other, as dvc.yaml's commands name them
PATH_ARGS = {
    "raw": "DSB-layout dataset folder",
    "prepared": "prepared dataset folder (dataset.npz, labels/)",
    "split": "split JSON",
    "trained": "model file the train stage writes (weights, architecture, input size)",
    "model": "model file with the predict settings stored in it (what users apply)",
    "details": "JSON of the figures kept out of the metrics table",
    "live": "dvclive folder for per-epoch metrics and plots",
    "resume": "resumable training checkpoint (kept while training runs, not a DVC output)",
    "predictions": "predictions folder",
    "curve": "CSV of the DSB score against the IoU threshold",
    "metrics": "metrics JSON to write",
    "csv": "per-image CSV to write",
    "plots": "folder for the figures",
    "out": "output path",
}


def stage_parser(description: str, *paths: str) -> argparse.ArgumentParser:
    """An argument parser with ``--params`` and a required ``--NAME`` for each of ``paths``
    (names from :data:`PATH_ARGS`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    for name in paths:
        parser.add_argument(f"--{name}", required=True, help=PATH_ARGS[name])
    return parser
