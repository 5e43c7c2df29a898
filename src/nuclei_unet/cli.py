"""What every stage script shares: logging set-up and one-line errors for bad input."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .errors import NucleiError


def run_stage(name: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], None]) -> None:
    """Parse arguments and run ``body``; a NucleiError ends the stage with a one-line message.

    Anything else is a bug and keeps its traceback.
    """
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    args = parser.parse_args()
    try:
        body(args)
    except NucleiError as exc:
        print(f"[{name}] error: {exc}", file=sys.stderr)
        sys.exit(1)


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser
