"""Building a step's command line once, for every runner; its exit code as a task outcome."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pydantic import ValidationError

from candela_sdk.errors import ExitCode

NO_DATA_EXIT_CODE = int(ExitCode.NO_DATA)
BAD_INPUT_EXIT_CODE = int(ExitCode.BAD_INPUT)


class StepArgumentsError(AirflowFailException, ValueError):
    """A step's arguments do not fit its service: bad input, so the task fails without retry."""


def build_command(service_name: str, service_args: dict[str, Any]) -> list[str]:
    """``[console-script, (subcommand), --flag, value, …]`` for the service, validated."""
    from candela_sdk.contract import format_validation_error
    from candela_sdk.services import get_service

    service = get_service(service_name)
    try:
        return service.argv_for(service_args)
    except ValidationError as exc:
        raise StepArgumentsError(
            f"bad arguments for service {service_name!r}: {format_validation_error(exc)}"
        ) from None


def failure_reason(result: dict[str, Any] | None, last_lines: Sequence[str]) -> str:
    """Why a step failed: the ``error`` of its JSON result, else the last line it printed.

    The JSON result is the last line of a service's stdout, so a log tail (the local runner's last
    lines, a pod's termination message) is searched for it first.
    """
    if isinstance(result, dict) and result.get("error"):
        return str(result["error"])
    lines = [line.strip() for line in last_lines if line.strip()]
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict) and parsed.get("error"):
                return str(parsed["error"])
    return lines[-1] if lines else ""


def step_failure(service: str, returncode: int, reason: str) -> AirflowException:
    """The task failure for a service that exited ``returncode`` (not 0, not "no data").

    Bad input (exit code 2) is a :class:`AirflowFailException`: retrying cannot fix it, so the
    task fails at once with the service's reason. Any other code is an ordinary, retried failure.
    """
    if returncode == BAD_INPUT_EXIT_CODE:
        return AirflowFailException(
            f"{service}: bad input (exit code {returncode}, not retried): {reason}"
        )
    return AirflowException(f"{service} failed (exit code {returncode}): {reason}")
