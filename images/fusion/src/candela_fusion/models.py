"""Model bundles: a ``model.keras`` beside its ``metadata.json``, built in or in the registry.

``metadata.json`` holds what inference needs besides the weights: the network kind (``s2``,
``s1``, ``fused``), the task (``pixel``/``patch``), the input bands and polarisations, the
normalisation (per-channel mean and standard deviation of the training pixels), the class table,
the training data and settings, and the sha256 of ``model.keras``.

``--model s2|s1|fused`` are the **built-in** models, shipped in ``candela_fusion/weights/`` (pixel
models on the ``water`` class table, trained by ``bench/train_builtin.py`` on the Sen1Floods11
chip: a demonstration of the code path, not a validated product). Any other name is a model
**registered** by ``candela-fusion train --register NAME`` in the model registry that change
detection uses (``candela_sdk.registry``: ``<root>/<name>/model.keras`` + ``metadata.json``;
``service: "fusion"`` tells the two services' models apart).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from candela_fusion.classes import ClassTable, from_json
from candela_fusion.nets import KINDS, OPTICAL_BANDS, POLARISATIONS
from candela_sdk import storage
from candela_sdk.errors import InputError

log = logging.getLogger(__name__)

WEIGHTS = Path(__file__).parent / "weights"
REGISTERED_SERVICE = "fusion"


@dataclass
class Normalisation:
    optical_mean: list[float] = field(default_factory=lambda: [0.1] * len(OPTICAL_BANDS))
    optical_std: list[float] = field(default_factory=lambda: [0.1] * len(OPTICAL_BANDS))
    radar_mean: list[float] = field(default_factory=lambda: [-12.0, -19.0])
    radar_std: list[float] = field(default_factory=lambda: [5.0, 5.0])

    @classmethod
    def fit(cls, optical: np.ndarray, radar: np.ndarray) -> Normalisation:
        """From training pixels: ``optical`` (N, 10) reflectance, ``radar`` (N, 2) dB."""
        o = optical[np.isfinite(optical).all(axis=1)]
        r = radar[np.isfinite(radar).all(axis=1)]
        return cls(
            [float(v) for v in o.mean(axis=0)],
            [float(max(v, 1e-4)) for v in o.std(axis=0)],
            [float(v) for v in r.mean(axis=0)],
            [float(max(v, 1e-3)) for v in r.std(axis=0)],
        )

    def optical(self, x: np.ndarray) -> np.ndarray:
        """(…, 10) reflectance → standardised float32; non-finite → 0."""
        z = (x - np.asarray(self.optical_mean, "float32")) / np.asarray(self.optical_std, "float32")
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype("float32")

    def radar(self, x: np.ndarray) -> np.ndarray:
        z = (x - np.asarray(self.radar_mean, "float32")) / np.asarray(self.radar_std, "float32")
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype("float32")


@dataclass
class Bundle:
    name: str
    kind: str
    task: str
    classes: ClassTable
    norm: Normalisation
    net: Any  # keras.Model
    metadata: dict[str, Any]


def metadata_for(
    name: str,
    kind: str,
    task: str,
    classes: ClassTable,
    norm: Normalisation,
    training: dict[str, Any],
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "service": REGISTERED_SERVICE,
        "architecture": f"fusion-{kind}",
        "kind": kind,
        "task": task,
        "optical_bands": list(OPTICAL_BANDS) if kind != "s1" else [],
        "polarisations": list(POLARISATIONS) if kind != "s2" else [],
        "bands": (list(OPTICAL_BANDS) if kind != "s1" else [])
        + (list(POLARISATIONS) if kind != "s2" else []),
        "normalisation": {
            "rule": "z = (x - mean) / std per channel (reflectance; backscatter in dB)",
            **norm.__dict__,
        },
        "classes": classes.to_json(),
        "training": training,
        "metrics": metrics or {},
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def save(folder: str | Path, net: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``model.keras`` and ``metadata.json`` (with the digest) into a local folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net.save(folder / "model.keras")
    record = {**metadata, "sha256": storage.sha256_of(folder / "model.keras")}
    record["size_bytes"] = (folder / "model.keras").stat().st_size
    (folder / "metadata.json").write_text(json.dumps(record, indent=2))
    return record


def register(name: str, local_folder: str | Path, root: str | None = None) -> dict[str, Any]:
    """Copy a saved bundle into the model registry under ``name``."""
    from candela_sdk import storage
    from candela_sdk.registry import REGISTERED_NAME, builtin_names, registry_root

    if not REGISTERED_NAME.match(name) or name in KINDS or name in builtin_names():
        raise InputError(
            f"invalid model name {name!r}: lower-case letters, digits, '_', '.', '-' (2-63), "
            f"not a built-in name ({', '.join((*KINDS, *builtin_names()))})"
        )
    src = Path(local_folder)
    record = json.loads((src / "metadata.json").read_text())
    record["name"] = name
    target = storage.parse(root or registry_root()).join(name)
    record["uri"] = target.join("model.keras").uri
    storage.write_bytes(target.join("model.keras").uri, (src / "model.keras").read_bytes())
    storage.write_text(target.join("metadata.json").uri, json.dumps(record, indent=2))
    log.info("registered fusion model %s at %s", name, target.uri)
    return record


def available() -> list[str]:
    """Built-in model names and the registered fusion models."""
    from candela_sdk import storage
    from candela_sdk.registry import registered_names, registry_root

    out = [k for k in KINDS if (WEIGHTS / k / "metadata.json").is_file()]
    root = registry_root()
    for n in registered_names(root):
        try:
            meta = json.loads(storage.read_text(storage.parse(root).join(n, "metadata.json").uri))
        except Exception:
            continue
        if meta.get("service") == REGISTERED_SERVICE:
            out.append(n)
    return out


def load(name: str) -> Bundle:
    """The model ``name`` (built in, else registered); bad input when it is unknown, not a
    fusion model, or its file does not match its recorded digest."""
    import keras

    from candela_sdk import storage
    from candela_sdk.registry import find_model, registry_root

    if name in KINDS:
        folder = WEIGHTS / name
        if not (folder / "metadata.json").is_file():
            raise InputError(
                f"built-in fusion model {name!r} has no weights in {folder} "
                "(run images/fusion/bench/train_builtin.py)"
            )
        meta = json.loads((folder / "metadata.json").read_text())
        path = str(folder / "model.keras")
    else:
        try:
            found = find_model(name, registry_root())
        except InputError:
            raise InputError(
                f"unknown fusion model {name!r}: not built in ({', '.join(KINDS)}) and not "
                f"registered in {registry_root()} (fusion models there: "
                f"{', '.join(n for n in available() if n not in KINDS) or 'none'})"
            ) from None
        if found.uri is None:
            raise InputError(f"{name!r} is a built-in change model, not a fusion model")
        meta = json.loads(storage.read_text(storage.parse(found.uri).join("metadata.json").uri))
        if meta.get("service") != REGISTERED_SERVICE:
            raise InputError(
                f"registered model {name!r} is a {meta.get('architecture', '?')} model of "
                f"another service, not a fusion model"
            )
        path = storage.local_copy(storage.parse(found.uri).join("model.keras").uri, ".keras")
    digest = storage.sha256_of(path)
    if meta.get("sha256") and digest != meta["sha256"]:
        raise InputError(
            f"model {name!r}: digest mismatch ({digest[:12]} != {meta['sha256'][:12]}): the "
            "file changed after it was saved"
        )
    try:
        net = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise InputError(f"model {name!r}: not a loadable .keras file: {exc}") from None
    classes = from_json(meta["classes"])
    n_out = int(net.outputs[0].shape[-1])
    if n_out != len(classes.classes):
        raise InputError(
            f"model {name!r} predicts {n_out} classes but its class table has "
            f"{len(classes.classes)}"
        )
    norm = Normalisation(
        **{k: v for k, v in meta["normalisation"].items() if k in Normalisation().__dict__}
    )
    return Bundle(meta["name"], meta["kind"], meta.get("task", "pixel"), classes, norm, net, meta)
