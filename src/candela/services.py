"""The service catalogue; its home is :mod:`candela_sdk.services` (re-exported here)."""

from __future__ import annotations

from candela_sdk.services import UnknownService, all_services, catalogue, get_service

__all__ = ["UnknownService", "all_services", "catalogue", "get_service"]
