"""The catalogue of processing services, built from the ``candela.services`` entry points.

Every service package declares its :class:`~candela_sdk.contract.Service` under the entry-point
group ``candela.services``; the platform's catalogue, the operators' command lines and the pod
specs all read it from here.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from candela_sdk.contract import Service

GROUP = "candela.services"


class UnknownService(KeyError):
    def __str__(self) -> str:
        return f"unknown service {self.args[0]!r}; known: {', '.join(sorted(all_services()))}"


@cache
def all_services() -> dict[str, Service]:
    found: dict[str, Service] = {}
    for ep in entry_points(group=GROUP):
        svc = ep.load()
        found[svc.name] = svc
    return dict(sorted(found.items()))


def get_service(name: str) -> Service:
    try:
        return all_services()[name]
    except KeyError:
        raise UnknownService(name) from None


def catalogue() -> list[dict[str, Any]]:
    return [svc.describe() for svc in all_services().values()]
