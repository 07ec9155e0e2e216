"""Errors the drift job reports as one line and exit status 2: the input, not the code, is wrong."""

from __future__ import annotations

from training_jobs.common import JobError


class DriftInputError(JobError):
    """Bad or missing input; the message names the setting, object or feature to fix."""


class MissingFeatureError(DriftInputError):
    """A schema feature is absent from the reference or the current data."""


class EmptyWindowError(DriftInputError):
    """The current window holds no captured inferences."""
