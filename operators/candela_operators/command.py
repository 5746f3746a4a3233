"""Building a step's command line once, for every runner."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

NO_DATA_EXIT_CODE = 3


class StepArgumentsError(ValueError):
    pass


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
