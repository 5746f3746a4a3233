"""The three networks (Keras 3): ``s2`` (optical only), ``s1`` (radar only), ``fused``.

All are small fully-convolutional pixel classifiers (two 3×3 convolutions per encoder, so a
pixel sees a 5×5 neighbourhood: :data:`MARGIN` = 2 pixels of context on each side, which tiled
inference adds around each tile), or, with ``task="patch"``, the same encoders with global
average pooling and a sigmoid multi-label head (BigEarthNet patches).

``fused`` is **feature fusion** with two encoders (see the README for why not early fusion):

* the optical encoder's features are multiplied by the optical validity (1 clear, 0 cloud,
  shadow, snow or no data), so an invalid optical pixel contributes nothing;
* the radar encoder feeds both the fused head and a **radar head** of its own, trained jointly;
  where the optical pixel is invalid the service reads the radar head, elsewhere the fused head,
  and writes which one in the source band.
"""

from __future__ import annotations

from typing import Any, Literal

import keras
from keras import layers

Kind = Literal["s2", "s1", "fused"]
Task = Literal["pixel", "patch"]
KINDS: tuple[str, ...] = ("s2", "s1", "fused")
MARGIN = 2
OPTICAL_BANDS: tuple[str, ...] = (
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B11",
    "B12",
)
POLARISATIONS: tuple[str, ...] = ("VV", "VH")


def _encoder(x: Any, width: int, name: str) -> Any:
    x = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{name}_conv1")(x)
    return layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{name}_conv2")(x)


def _head(x: Any, n: int, task: Task, name: str) -> Any:
    if task == "pixel":
        return layers.Conv2D(n, 1, activation="softmax", name=name)(x)
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    return layers.Dense(n, activation="sigmoid", name=name)(x)


def build(kind: Kind, n_classes: int, task: Task = "pixel", width: int = 16) -> keras.Model:
    """A new network. Inputs by name: ``optical`` (…, 10), ``radar`` (…, 2), ``valid`` (…, 1)
    as each kind needs; output ``probs`` (and ``radar`` for ``fused``)."""
    optical = keras.Input((None, None, len(OPTICAL_BANDS)), name="optical")
    radar = keras.Input((None, None, len(POLARISATIONS)), name="radar")
    valid = keras.Input((None, None, 1), name="valid")
    if kind == "s2":
        out = _head(_encoder(optical, width, "optical"), n_classes, task, "probs")
        return keras.Model({"optical": optical}, {"probs": out}, name="s2")
    if kind == "s1":
        out = _head(_encoder(radar, width, "radar"), n_classes, task, "probs")
        return keras.Model({"radar": radar}, {"probs": out}, name="s1")
    if kind != "fused":
        raise ValueError(f"unknown network kind {kind!r}")
    fo = layers.Multiply(name="optical_gate")([_encoder(optical, width, "optical"), valid])
    fr = _encoder(radar, width, "radar")
    joint = layers.Concatenate(name="fusion")([fo, fr, valid])
    joint = layers.Conv2D(2 * width, 1, activation="relu", name="fusion_mix")(joint)
    return keras.Model(
        {"optical": optical, "radar": radar, "valid": valid},
        {
            "probs": _head(joint, n_classes, task, "probs"),
            "radar": _head(fr, n_classes, task, "radar_head"),
        },
        name="fused",
    )


def input_names(kind: str) -> tuple[str, ...]:
    return {"s2": ("optical",), "s1": ("radar",), "fused": ("optical", "radar", "valid")}[kind]
