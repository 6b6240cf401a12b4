"""What a data-set adapter writes for the product-path benchmark (docs/benchmarks.md): a spec,
the recordings of the training and the test runs, and a labels table, as a user has them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import yaml

from schemas import SystemSpec

RUN_COLUMN: Final = "run"
TIME_COLUMN: Final = "t_s"
LABEL_COLUMNS: Final = ("run", "component", "fault", "start_s", "end_s")


@dataclass(frozen=True)
class AdaptedFiles:
    """What an adapter wrote.

    Attributes:
        spec: The machine (``spec.yaml``).
        train, test: Recordings of the training and the test runs, one CSV each with a run
            column and a time column in seconds.
        labels: The labels table of every run.
        train_runs, test_runs: Runs on each side.
    """

    spec: Path
    train: Path
    test: Path
    labels: Path
    train_runs: int
    test_runs: int

    @classmethod
    def under(cls, out: Path, *, train_runs: int, test_runs: int) -> AdaptedFiles:
        """The files' paths under ``out``."""
        return cls(
            spec=out / "spec.yaml",
            train=out / "train.csv",
            test=out / "test.csv",
            labels=out / "labels.csv",
            train_runs=train_runs,
            test_runs=test_runs,
        )

    @classmethod
    def begin(cls, out: Path, spec: SystemSpec, *, train_runs: int, test_runs: int) -> AdaptedFiles:
        """Create ``out``, write the spec as YAML there and return the files' paths."""
        out.mkdir(parents=True, exist_ok=True)
        paths = cls.under(out, train_runs=train_runs, test_runs=test_runs)
        document = spec.model_dump(mode="json", exclude_none=True)
        paths.spec.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
        return paths


def flagged_stretches(flags: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """``[first, end)`` indices of each stretch of consecutive non-zero flags."""
    padded = np.concatenate([[0], (flags > 0).astype(np.int64), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
