"""stac-api-validator (the STAC community's conformance checker) run from the tests: core,
collections, features and item-search, on the review app's results STAC API.

Checks that fail here only because the machine is offline are excluded, and nothing else (listed
in the README): the validator runs stac-validator and stac-check on each Collection and Item,
which fetch the STAC and extension JSON schemas from schemas.stacspec.org /
stac-extensions.github.io (the same documents are validated offline against the STAC schemas
shipped with pystac by ``test_items_validate_with_stac_validator``)."""

from __future__ import annotations

import json
from typing import Any

CONFORMANCE_CLASSES = ["core", "collections", "features", "item-search"]

OFFLINE_ONLY = (
    "failed stac-validator validation",  # remote JSON schema fetch (stac-validator)
    "is not a valid STAC object",  # remote JSON schema fetch (stac-check)
    "Error while running stac-check",  # remote JSON schema fetch (stac-check)
)


def offline_only(message: str) -> bool:
    """A validator error that is a schema fetch failing offline (and nothing else)."""
    fetch = ("Max retries exceeded", "NameResolutionError", "Failed to resolve", "HTTPSConnection")
    return any(k in message for k in OFFLINE_ONLY) and any(k in message for k in fetch)


def validate(
    root_url: str, collection: str, item: dict[str, Any], token: str | None = None
) -> tuple[list[str], list[str]]:
    """Run the validator on the STAC API at ``root_url``; ``item`` is one published item of
    ``collection`` (a point inside it is the ``intersects`` geometry). Answers the errors that
    count, and the offline-only ones."""
    from shapely.geometry import mapping, shape
    from stac_api_validator.validations import QueryConfig, validate_api

    geometry = json.dumps(mapping(shape(item["geometry"]).representative_point()))
    _warnings, errors = validate_api(
        root_url=root_url,
        ccs_to_validate=CONFORMANCE_CLASSES,
        collection=collection,
        geometry=geometry,
        auth_bearer_token=token,
        auth_query_parameter=None,
        fields_nested_property=None,
        validate_pagination=True,
        query_config=QueryConfig(*([None] * 13)),
        transaction_collection=None,
        headers=None,
        open_assets_urls=False,
    )
    found = [msg for _, msg in errors.errors]
    return [m for m in found if not offline_only(m)], [m for m in found if offline_only(m)]
