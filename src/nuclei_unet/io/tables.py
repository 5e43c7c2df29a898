"""CSV tables: pandas DataFrames written atomically, read back with the same columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nuclei_unet.io.files import atomic_path


def write_table(path: str | Path, table: pd.DataFrame) -> None:
    """Write ``table`` as CSV (no index column), atomically; missing values are empty cells.

    Lines end in CRLF, as RFC 4180 and Python's csv module (which wrote these files before) do.
    """
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\r\n")
