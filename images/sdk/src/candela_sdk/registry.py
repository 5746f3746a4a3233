"""Change-model names: the one rule for "is this a known model, and where is it".

A change model is known when it is

* **built in** (:data:`BUILTIN_NAMES`, shipped with the changedetect service),
* a **plug-in** (an entry point in the group :data:`PLUGIN_GROUP`; only its name is read, nothing
  is imported), or
* **registered** in the model registry: ``<root>/<name>/metadata.json`` beside
  ``<root>/<name>/model.keras``, where the root is ``CANDELA_MODEL_REGISTRY``, else
  ``<storage root>/models`` with the storage root from ``CANDELA_STORAGE_ROOT`` or
  ``CANDELA_HOME/storage``.

The DAG's first task, the CLI (``candela run``, ``candela watch add``, ``candela models``), the
OGC API and the changedetect service's parameter validation all ask :func:`find_model` (or
:func:`check_model_name`), so they accept exactly the same names and refuse the others with the
same message. Light on purpose: the standard library and :mod:`candela_sdk.storage` only (no
TensorFlow, no NumPy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal

from candela_sdk.errors import InputError

BUILTIN_NAMES: tuple[str, ...] = ("cva", "irmad", "encoder")
# one line each, for the pickers that offer them (the review app's "New run" page)
BUILTIN_DESCRIPTIONS: dict[str, str] = {
    "cva": "change vector analysis: magnitude of the change of standardised reflectances (fast)",
    "irmad": "IR-MAD: iteratively reweighted multivariate alteration detection (Nielsen 2007)",
    "encoder": "self-supervised convolutional encoder trained on the pair itself (TensorFlow)",
}
# Where each service's built-in models run: the one home of that fact. A step whose model runs on
# a "gpu" asks the cluster for one (``nvidia.com/gpu``, the GPU node pool, the service's ``-gpu``
# image) and waits in the ``candela_gpu`` Airflow pool; the others get CPU nodes and the plain
# image (:meth:`candela_sdk.contract.Service.device_for`). The encoder trains a convolutional
# network on each pair; CVA and IR-MAD are closed-form statistics; the fusion networks are small
# pixel classifiers (a few thousand weights). A registered model runs where its metadata's
# ``device`` says, else where the built-in network of its ``architecture`` runs; a plug-in model
# (only its name is known) on a CPU.
MODEL_DEVICES: dict[str, dict[str, Literal["cpu", "gpu"]]] = {
    "changedetect": {"cva": "cpu", "irmad": "cpu", "encoder": "gpu"},
    "fusion": {"s2": "cpu", "s1": "cpu", "fused": "cpu"},
}
PLUGIN_GROUP = "candela.changedetect.models"
# what a model name may look like anywhere (built-in, plug-in or registered): the JSON Schema
# of a run configuration carries it, so a REST call with a malformed name is refused at once
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# a registered model's name (the folder under the registry root)
REGISTERED_NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,62}$")


class UnknownModel(InputError, ValueError):
    """Not a built-in, plug-in or registered change model (bad input; also a ``ValueError``, so
    a pydantic validator that calls :func:`check_model_name` reports it as a field error)."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    kind: Literal["builtin", "plugin", "registered"]
    # registered: the folder holding model.keras and metadata.json; otherwise None
    uri: str | None = None


def registry_root(storage_root: str | None = None) -> str:
    """The registry folder or S3 prefix (URI): ``CANDELA_MODEL_REGISTRY``, else
    ``<storage root>/models`` (the given root, else the settings' one)."""
    from candela_sdk import storage
    from candela_sdk.settings import get_settings

    s = get_settings()
    if s.model_registry:
        return storage.to_uri(s.model_registry)
    return storage.parse(storage_root or s.storage).join("models").uri


def plugin_names() -> list[str]:
    """Names of the models other packages add (entry points; nothing is imported)."""
    return sorted({ep.name for ep in entry_points(group=PLUGIN_GROUP)})


def builtin_names() -> list[str]:
    """Built-in and plug-in model names, sorted."""
    return sorted({*BUILTIN_NAMES, *plugin_names()})


def registered_names(root: str | None = None) -> list[str]:
    """Names of the models in the registry: folders with a ``metadata.json`` (an absent
    registry has none)."""
    from candela_sdk import storage

    base = storage.parse(root or registry_root())
    try:
        found = storage.list_names(base.uri)
    except InputError:
        return []
    return [
        n
        for n in found
        if REGISTERED_NAME.match(n) and storage.exists(base.join(n, "metadata.json").uri)
    ]


def find_model(name: str, root: str | None = None) -> KnownModel:
    """Where the model ``name`` is; :class:`UnknownModel` (bad input) when it is nowhere."""
    from candela_sdk import storage

    if name in BUILTIN_NAMES:
        return KnownModel(name, "builtin")
    if name in plugin_names():
        return KnownModel(name, "plugin")
    root = root or registry_root()
    if REGISTERED_NAME.match(name):
        folder = storage.parse(root).join(name)
        if storage.exists(folder.join("metadata.json").uri):
            return KnownModel(name, "registered", folder.uri)
    raise UnknownModel(unknown_model_message(name, root))


def unknown_model_message(name: str, root: str | None = None) -> str:
    root = root or registry_root()
    registered = registered_names(root)
    return (
        f"unknown change model {name!r}: not built in ({', '.join(builtin_names())}) and not "
        f"registered in {root} (registered: {', '.join(registered) or 'none'}; "
        "see `candela models list`)"
    )


def model_device(service: str, name: str, root: str | None = None) -> Literal["cpu", "gpu"]:
    """Where the model ``name`` of ``service`` runs (:data:`MODEL_DEVICES`); a registered model
    is read from its ``metadata.json``; :class:`UnknownModel` when it is nowhere."""
    import json

    from candela_sdk import storage

    builtin = MODEL_DEVICES.get(service, {})
    if name in builtin:
        return builtin[name]
    found = find_model(name, root)
    if found.uri is None:  # a plug-in or another service's built-in name
        return "cpu"
    meta = json.loads(storage.read_text(storage.parse(found.uri).join("metadata.json").uri))
    device = meta.get("device")
    if device in ("cpu", "gpu"):
        return "gpu" if device == "gpu" else "cpu"
    architecture = str(meta.get("architecture") or "")
    for table in MODEL_DEVICES.values():
        # "encoder" (changedetect), "fusion-fused" (fusion): the network it was trained from
        kind = architecture.rsplit("-", 1)[-1]
        if architecture in table or kind in table:
            return table.get(architecture) or table[kind]
    return "cpu"


def check_model_name(name: str, root: str | None = None) -> str:
    """``name`` if it is a known model; otherwise :class:`UnknownModel`."""
    find_model(name, root)
    return name
