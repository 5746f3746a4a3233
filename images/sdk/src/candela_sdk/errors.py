"""One exception family for every service, mapped once to process exit codes.

The exit codes are the contract between a service and whoever runs it (the local runner, a
Kubernetes pod, a user's shell): 0 done, 3 "no data" (the pipeline skips downstream work),
2 bad input (parameters or input data), 4 output could not be written, 1 anything else.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    BAD_INPUT = 2
    NO_DATA = 3
    OUTPUT_ERROR = 4


class CandelaError(Exception):
    """Base of every error a service reports on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE
    outcome: str = "failed"


class InputError(CandelaError):
    """Bad parameters or bad input data: a missing band, a corrupt raster, grids that differ."""

    exit_code = ExitCode.BAD_INPUT
    outcome = "bad_input"


class NoDataError(CandelaError):
    """A documented, non-failing outcome: nothing to process (empty search, AOI outside footprint)."""

    exit_code = ExitCode.NO_DATA
    outcome = "no_data"


class OutputError(CandelaError):
    """The output location cannot be written (read-only, full, unreachable)."""

    exit_code = ExitCode.OUTPUT_ERROR
    outcome = "output_error"


class ServiceFailure(CandelaError):
    """Anything else the service detected and could not recover from."""
