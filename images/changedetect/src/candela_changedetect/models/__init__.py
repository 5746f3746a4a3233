"""Change models behind one interface, found by name (``--model``).

Built-in models are listed in :data:`BUILTIN`; other packages add models through the entry-point
group ``candela.changedetect.models`` (``name = "package.module:ModelClass"``), e.g. the
TensorFlow encoder that will run on GPU. A model class follows
:class:`candela_changedetect.models.base.ChangeModel`.

This module stays light (no NumPy at import) because the service declaration validates
``--model`` against :func:`available_models`.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from candela_changedetect.models.base import ChangeModel

ENTRY_POINT_GROUP = "candela.changedetect.models"

BUILTIN: dict[str, str] = {
    "cva": "candela_changedetect.models.cva:CVAModel",
    "irmad": "candela_changedetect.models.irmad:IRMADModel",
    "encoder": "candela_changedetect.models.encoder:EncoderModel",
}


@cache
def _registry() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def available_models() -> list[str]:
    return sorted(_registry())


def model_class(name: str) -> type[ChangeModel]:
    target = _registry().get(name)
    if target is None:
        from candela_sdk.errors import InputError

        raise InputError(f"unknown model {name!r} (available: {', '.join(available_models())})")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def is_known(name: str) -> bool:
    """A built-in/plug-in model or a model registered in the model registry."""
    if name in _registry():
        return True
    from candela_changedetect import registry
    from candela_sdk.errors import InputError

    try:
        registry.get(name)
    except InputError:
        return False
    return True


def create_model(name: str, options: dict[str, Any] | None = None) -> ChangeModel:
    """An unfitted model configured with ``options`` (validated by the model's own schema).

    A name that is not a built-in or plug-in model is looked up in the model registry
    (:mod:`candela_changedetect.registry`): a registered encoder runs with its stored weights,
    after checking the file's sha256 digest.
    """
    if name not in _registry():
        from candela_changedetect import registry
        from candela_changedetect.models.encoder import EncoderModel

        record, opts = registry.resolve(name, options or {})
        model = EncoderModel.from_options(opts)
        model.registered = {
            "name": name,
            "sha256": record["sha256"],
            "uri": record["uri"],
            "bands": record["bands"],
        }
        return model
    return model_class(name).from_options(options or {})
