"""A service's log lines into the task's log at their own level.

Services log ``<date> <time> LEVEL name: message`` (:func:`candela_sdk.contract.configure_logging`);
a step operator hands each line of the step's output to :func:`line_logger`, which logs it at
that level (WARNING stays a warning in Airflow's log, DEBUG stays debug), and anything else
(a library printing to stdout) at INFO.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)? (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) "
)


def level_of(line: str) -> int:
    """The logging level a service line carries (INFO when it carries none)."""
    m = _LINE.match(line)
    return getattr(logging, m["level"]) if m else logging.INFO


def line_logger(log: Any) -> Callable[[str], None]:
    """``log``: anything with the ``logging.Logger.log`` call (Airflow's task logger)."""

    def emit(line: str) -> None:
        log.log(level_of(line), "%s", line)

    return emit
