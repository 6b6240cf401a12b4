"""Errors of training data a user can cause: light to import, so that the CLI can map them
to one line and an exit status without loading torch."""

from __future__ import annotations


class TrainingDataError(ValueError):
    """The data gives no training or no validation window (exit status 1)."""


class WindowOptionError(TrainingDataError):
    """A --window-steps or --rate value the model cannot use (exit status 2)."""


class SplitError(TrainingDataError):
    """The runs cannot be split into training and validation as asked (exit status 1)."""
