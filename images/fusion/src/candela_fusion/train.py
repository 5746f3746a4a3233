"""Training: patches streamed with ``tf.data`` from a patch store, one patch at a time.

The generator reads one patch from the (memory-mapped) arrays, normalises it and, for the
``fused`` network, draws an optical validity mask from a real cloud field (a random crop, flip
and cloud share between 0 and 95 %: optical dropout with real cloud shapes), so the fused head
learns to do without the optical pixels where they are clouded and the radar head learns to
stand alone. Unlabelled pixels (255) weigh 0. ``task="patch"`` trains the multi-label heads
(labels (N, n_classes) multi-hot).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from candela_fusion.data import LABEL_NODATA
from candela_fusion.models import Normalisation
from candela_fusion.nets import build

log = logging.getLogger(__name__)


def _masks(rng: np.random.Generator, field: np.ndarray | None, h: int, w: int) -> np.ndarray:
    if field is None or rng.random() < 0.25:
        return np.ones((h, w), bool)
    y = int(rng.integers(0, max(1, field.shape[0] - h + 1)))
    x = int(rng.integers(0, max(1, field.shape[1] - w + 1)))
    crop = field[y : y + h, x : x + w]
    if rng.random() < 0.5:
        crop = crop[::-1]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    share = float(rng.uniform(0.0, 0.95))
    return ~(crop >= np.quantile(crop, 1.0 - share))


def patch_stream(
    store: dict[str, np.ndarray],
    kind: str,
    task: str,
    norm: Normalisation,
    indices: np.ndarray,
    seed: int,
    cloud: np.ndarray | None = None,
) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """(inputs, targets, sample weights) per patch, in a new random order each pass."""
    rng = np.random.default_rng(seed)
    while True:
        for i in rng.permutation(indices):
            optical = norm.optical(np.asarray(store["optical"][i]))
            radar = norm.radar(np.asarray(store["radar"][i]))
            labels = np.asarray(store["labels"][i])
            h, w = optical.shape[:2]
            valid = np.isfinite(np.asarray(store["optical"][i])).all(axis=-1)
            if "valid" in store:
                valid &= np.asarray(store["valid"][i]) != 0
            if kind == "fused":
                valid &= _masks(rng, cloud, h, w)
            x: dict[str, np.ndarray] = {}
            if kind in ("s2", "fused"):
                x["optical"] = optical * valid[..., None] if kind == "fused" else optical
            if kind in ("s1", "fused"):
                x["radar"] = radar
            if kind == "fused":
                x["valid"] = valid[..., None].astype("float32")
            if task == "pixel":
                weight = (labels != LABEL_NODATA).astype("float32")
                target = np.where(labels == LABEL_NODATA, 0, labels).astype("int32")
            else:
                weight = np.float32(1.0)
                target = labels.astype("float32")
            y = {"probs": target}
            sw = {"probs": weight}
            if kind == "fused":
                y["radar"], sw["radar"] = target, weight
            yield x, y, sw


def dataset(
    store: dict[str, np.ndarray],
    kind: str,
    task: str,
    norm: Normalisation,
    indices: np.ndarray,
    batch: int,
    seed: int,
    cloud: np.ndarray | None = None,
) -> Any:
    import tensorflow as tf

    x0, y0, w0 = next(patch_stream(store, kind, task, norm, indices[:1], seed, cloud))

    def spec(d: dict[str, Any]) -> dict[str, Any]:
        return {k: tf.TensorSpec(np.shape(v), np.asarray(v).dtype) for k, v in d.items()}

    ds = tf.data.Dataset.from_generator(
        lambda: patch_stream(store, kind, task, norm, indices, seed, cloud),
        output_signature=(spec(x0), spec(y0), spec(w0)),
    )
    return ds.batch(batch).prefetch(2)


def train(
    store: dict[str, np.ndarray],
    kind: str,
    n_classes: int,
    *,
    task: str = "pixel",
    norm: Normalisation | None = None,
    indices: np.ndarray | None = None,
    epochs: int = 6,
    steps_per_epoch: int | None = None,
    batch: int = 8,
    seed: int = 0,
    cloud: np.ndarray | None = None,
    width: int = 16,
    learning_rate: float = 3e-3,
) -> tuple[Any, Normalisation, dict[str, Any]]:
    """A trained network, its normalisation and a training record (patches/s included)."""
    import keras

    keras.utils.set_random_seed(seed)
    idx = np.arange(store["labels"].shape[0]) if indices is None else np.asarray(indices)
    if norm is None:
        sample = idx[: min(len(idx), 64)]
        o = np.concatenate([np.asarray(store["optical"][i]).reshape(-1, 10) for i in sample])
        r = np.concatenate([np.asarray(store["radar"][i]).reshape(-1, 2) for i in sample])
        norm = Normalisation.fit(o, r)
    net = build(kind, n_classes, task, width)  # type: ignore[arg-type]
    loss = (
        keras.losses.SparseCategoricalCrossentropy()
        if task == "pixel"
        else keras.losses.BinaryCrossentropy()
    )
    losses = {"probs": loss, **({"radar": loss} if kind == "fused" else {})}
    net.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses)
    steps = steps_per_epoch or max(1, -(-len(idx) // batch))
    ds = dataset(store, kind, task, norm, idx, batch, seed, cloud)
    t0 = time.perf_counter()
    hist = net.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - t0
    record = {
        "kind": kind,
        "task": task,
        "patches": int(len(idx)),
        "epochs": epochs,
        "steps_per_epoch": steps,
        "batch": batch,
        "seed": seed,
        "width": width,
        "learning_rate": learning_rate,
        "optical_dropout": "real cloud shapes, share U(0, 0.95)" if kind == "fused" else None,
        "seconds": round(seconds, 3),
        "patches_per_second": round(epochs * steps * batch / seconds, 2),
        "final_loss": round(float(hist.history["loss"][-1]), 5),
    }
    log.info(
        "trained %s (%s): %d patches, %d epochs, %.1f s", kind, task, len(idx), epochs, seconds
    )
    return net, norm, record
