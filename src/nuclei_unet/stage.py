"""What every stage script shares: arguments, logging, timing and one-line errors (the
``nuclei-unet`` command shares the logging)."""

from __future__ import annotations

import argparse
import contextlib
import logging
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


def run_stage(name: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], None]) -> None:
    """Parse arguments and run ``body``; a NucleiError ends the stage with a one-line message.

    Anything else is a bug and keeps its traceback.
    """
    with console_logging(name):
        args = parser.parse_args()
        start = time.perf_counter()
        try:
            body(args)
        except NucleiError as exc:
            print(f"[{name}] error: {exc}", file=sys.stderr)
            sys.exit(1)
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
