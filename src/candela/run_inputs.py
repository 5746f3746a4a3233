"""Files a run names (its zones) put into storage, so that every step can read them.

A step may run anywhere: a subprocess of the Airflow worker, or a pod on another node
(``CANDELA_RUNNER=kubernetes``) that sees only the storage (``CANDELA_STORAGE_ROOT``), never the
disk of the machine that started the run. A zones file named by a local path is therefore copied
into ``<storage root>/run-inputs/zones/<sha256[:16]>-<name>`` (content-addressed: the same file
gives the same URI, so the same output key) and the run's steps are given that URI. Who does it:
the demo and ``candela run`` before triggering (their machine has the file), the review page's
upload, and the DAG's ``plan_run`` for a local path that the Airflow worker can read.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from candela.settings import Settings
from candela_sdk.errors import InputError

ZONES_FOLDER = ("run-inputs", "zones")


def zones_folder(settings: Settings) -> str:
    """Where zone files go: ``<storage root>/run-inputs/zones``."""
    from candela_sdk import storage

    return storage.parse(settings.storage).join(*ZONES_FOLDER).uri


def store_zones(settings: Settings, data: bytes, name: str) -> str:
    """Store a zones file's bytes under its digest; its URI (written once per content)."""
    from candela_sdk import storage

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name).strip("._") or "zones"
    digest = hashlib.sha256(data).hexdigest()[:16]
    uri = storage.parse(zones_folder(settings)).join(f"{digest}-{safe}").uri
    if not storage.exists(uri):  # same content, same name: the same URI (same key)
        storage.write_bytes(uri, data)
    return uri


def in_storage(settings: Settings, uri: str) -> bool:
    """Whether ``uri`` is an object store URI or lies under the storage root."""
    from candela_sdk import storage

    loc = storage.parse(uri)
    if loc.scheme == "s3":
        return True
    root = storage.parse(settings.storage)
    return root.scheme == "file" and (loc.path + "/").startswith(root.path.rstrip("/") + "/")


def stage_zones(settings: Settings, zones: str | None) -> str | None:
    """The storage URI of a run's ``zones``: unchanged when it is already in storage (``s3://``
    or under the storage root), else the local file copied there (:func:`store_zones`);
    :class:`InputError` when that file cannot be read here."""
    from candela_sdk import storage

    if not zones:
        return None
    if in_storage(settings, zones):
        return storage.to_uri(zones)
    path = Path(storage.parse(zones).path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"zones {zones}: cannot read it here ({exc.strerror or exc}); a step may run on "
            "another machine: give a storage URI (s3://… or under CANDELA_STORAGE_ROOT)"
        ) from None
    return store_zones(settings, data, path.name)
