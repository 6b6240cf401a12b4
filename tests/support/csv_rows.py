"""Reading the CSV files the data-set adapters write."""

from __future__ import annotations

import csv
from pathlib import Path


def csv_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a CSV file with a header, as a mapping from column to text."""
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
