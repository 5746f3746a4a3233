"""Candela SDK: the service contract and the building blocks every processing service shares.

Nothing here imports Airflow. Services depend on this package and on nothing else of the platform.
"""

from __future__ import annotations

from candela_sdk.errors import (
    CandelaError,
    ExitCode,
    InputError,
    NoDataError,
    OutputError,
    ServiceFailure,
)

__all__ = [
    "CandelaError",
    "ExitCode",
    "InputError",
    "NoDataError",
    "OutputError",
    "ServiceFailure",
]
__version__ = "0.1.0"
