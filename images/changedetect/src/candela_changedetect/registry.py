"""The model registry: ``.keras`` files with a metadata record under a folder or S3 prefix.

Layout under the registry root (``CANDELA_MODEL_REGISTRY``, else ``<storage root>/models`` with
the storage root from ``CANDELA_STORAGE_ROOT`` or ``CANDELA_HOME/storage``)::

    <root>/<name>/model.keras      the network (Keras 3 format)
    <root>/<name>/metadata.json    name, architecture, bands (order), normalisation, training
                                   data, metrics, sha256 of model.keras, created

Which names are known, and where the registry is, is decided by :mod:`candela_sdk.registry`
(the one rule the DAG, the CLI, the OGC API and this service share); this module manages the
files. The service resolves ``--model <name>`` here (it needs no database); the platform mirrors
the records in the ``candela.models`` table (``candela models list|show|register``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from candela_sdk import storage
from candela_sdk.registry import (
    REGISTERED_NAME,
    builtin_names,
    find_model,
    registered_names,
    registry_root,
)

log = logging.getLogger(__name__)

# the name rule, built-in names and registry root live in the SDK (one rule for every caller)
NAME = REGISTERED_NAME
FINETUNE_EPOCHS = 2
NORMALISATION = (
    "per date and band: z = (x - mean) / std over the pixels valid in both dates; "
    "invalid pixels set to 0"
)


def local_copy(uri: str) -> str:
    """A local path of a model file (S3 objects are downloaded to a temporary ``.keras``)."""
    from candela_sdk import storage

    return storage.local_copy(uri, ".keras")


def check_name(name: str) -> None:
    from candela_sdk.errors import InputError

    if not NAME.match(name):
        raise InputError(
            f"invalid model name {name!r}: lower-case letters, digits, '_', '.', '-' (2-63)"
        )
    if name in builtin_names():
        raise InputError(f"model name {name!r} is a built-in model")


def names(root: str | None = None) -> list[str]:
    return registered_names(root)


def get(name: str, root: str | None = None) -> dict[str, Any]:
    """The metadata record of a registered model; InputError when it is not registered."""
    from candela_sdk import storage
    from candela_sdk.errors import InputError

    root = root or registry_root()
    found = find_model(name, root)  # UnknownModel (an InputError) when it is nowhere
    if found.uri is None:
        raise InputError(f"model {name!r} is {found.kind}: it has no registry record")
    record: dict[str, Any] = json.loads(
        storage.read_text(storage.parse(found.uri).join("metadata.json").uri)
    )
    return record


def inspect_keras(path: str | Path) -> dict[str, Any]:
    """Load a .keras file and check it is a Candela encoder: its band count and layers."""
    import keras

    from candela_sdk.errors import InputError

    try:
        net = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:
        raise InputError(f"not a loadable .keras model: {path}: {exc}") from None
    if len(net.inputs) != 2 or {"forward", "backward"} - {layer.name for layer in net.layers}:
        raise InputError(
            f"{path} is not a Candela encoder (inputs before/after, forward/backward translators)"
        )
    return {"bands": int(net.inputs[0].shape[-1]), "parameters": int(net.count_params())}


def register(
    name: str,
    keras_file: str | Path,
    *,
    bands: list[str],
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    description: str = "",
    root: str | None = None,
) -> dict[str, Any]:
    """Copy ``keras_file`` into the registry with its metadata; returns the record."""
    from candela_sdk import storage
    from candela_sdk.errors import InputError

    check_name(name)
    if not Path(keras_file).is_file():
        raise InputError(f"model file not found: {keras_file}")
    info = inspect_keras(keras_file)
    if len(bands) != info["bands"]:
        raise InputError(
            f"--bands lists {len(bands)} bands but the model takes {info['bands']} input bands"
        )
    if len(set(bands)) != len(bands):
        raise InputError("--bands has duplicate band names")
    root = root or registry_root()
    folder = storage.parse(root).join(name)
    digest = storage.sha256_of(keras_file)
    record = {
        "name": name,
        "architecture": "encoder",
        "description": description,
        "bands": list(bands),
        "normalisation": NORMALISATION,
        "training": training or {},
        "metrics": metrics or {},
        "options": options or {},
        "parameters": info["parameters"],
        "sha256": digest,
        "uri": folder.join("model.keras").uri,
        "size_bytes": Path(keras_file).stat().st_size,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    storage.write_bytes(folder.join("model.keras").uri, Path(keras_file).read_bytes())
    storage.write_text(folder.join("metadata.json").uri, json.dumps(record, indent=2))
    log.info("registered model %s (%s) at %s", name, digest[:12], folder.uri)
    return record


def resolve(name: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, encoder options) to run a registered model; the file's digest is verified."""
    from candela_sdk.errors import InputError

    record = get(name)
    path = local_copy(record["uri"])
    digest = storage.sha256_of(path)
    if digest != record["sha256"]:
        raise InputError(
            f"model {name!r}: digest mismatch ({digest[:12]} != {record['sha256'][:12]}): "
            "the file changed after it was registered"
        )
    # default: fine-tune 2 epochs on the pair (measured on OSCD: pretrained weights alone
    # F1 0.135, fine-tuned 0.341, trained on the pair from scratch 0.333; see the README)
    opts = {
        "epochs": FINETUNE_EPOCHS,
        **record.get("options", {}),
        **options,
        "mode": "pretrained",
        "weights": path,
    }
    return record, opts
