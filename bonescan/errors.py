"""The one error type every reader raises for input it cannot use."""

from __future__ import annotations

import os


class BoneScanInputError(ValueError):
    """A study file that cannot be read as a whole-body bone scan.

    The message always names the file, says what is wrong and what to do, so that a server can
    return it to the user as it is (HTTP 422) and a batch job can log it and go on.
    """

    def __init__(self, path, problem: str, hint: str = ""):
        self.path = os.fspath(path) if path is not None else "<memory>"
        self.problem = problem
        self.hint = hint
        message = f"{self.path}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class ModelNotTrainedError(RuntimeError):
    """A model has no published weights yet (the server answers HTTP 503, batch jobs stop)."""
