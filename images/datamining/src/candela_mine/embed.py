"""The change-detection encoder's embedding of a patch, without TensorFlow.

The changedetect service's ``encoder`` is a pair of convolutional translators (``forward``:
before → after, ``backward``: after → before), each ``depth`` valid 3×3 convolutions + a 1×1
``mix`` convolution (GELU) + a 1×1 head, saved as a Keras 3 ``model.keras`` in the model registry
(``candela-changedetect … --register-as``, ``candela models register``). A service imports only
the SDK (import-linter: services are independent), so this module does not import
``candela_changedetect`` nor Keras: it reads the registered file (a zip: ``config.json`` names
the layers, ``model.weights.h5`` holds their kernels), and runs the ``forward`` translator up to
its ``mix`` layer in NumPy. The embedding of a patch is the mean and the standard deviation, over
its valid pixels, of the ``mix`` activations: ``2 × features`` numbers (32 for the default
16-channel encoder). Bands are standardised per band over the stack's valid pixels first, as the
encoder does with each date.

The same numbers as Keras: ``tests/test_embed.py`` compares them with the Keras network.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass

import numpy as np

from candela_sdk.errors import InputError

_SQRT2 = math.sqrt(2.0)


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / _SQRT2))


def _activation(name: str) -> object:
    if name == "gelu":
        return _gelu
    if name == "linear":
        return lambda x: x
    if name == "relu":
        return lambda x: np.maximum(x, 0.0)
    raise InputError(f"encoder layer activation {name!r} is not supported")


@dataclass
class Conv:
    kernel: np.ndarray  # (k, k, in, out)
    bias: np.ndarray
    activation: str


@dataclass
class Encoder:
    """The ``forward`` translator's convolutions up to its ``mix`` layer."""

    name: str
    bands: int
    convs: list[Conv]

    @property
    def halo(self) -> int:
        return sum((c.kernel.shape[0] - 1) // 2 for c in self.convs)

    @property
    def size(self) -> int:
        return 2 * int(self.convs[-1].kernel.shape[-1])

    def activations(self, x: np.ndarray) -> np.ndarray:
        """(H, W, bands) standardised → (H − 2·halo, W − 2·halo, features)."""
        from numpy.lib.stride_tricks import sliding_window_view

        out = x.astype(np.float32)
        for c in self.convs:
            k = c.kernel.shape[0]
            if k > 1:
                win = sliding_window_view(out, (k, k), axis=(0, 1))  # (h, w, C, k, k)
                out = np.einsum("hwcij,ijcf->hwf", win, c.kernel, optimize=True)
            else:
                out = out @ c.kernel[0, 0]
            out = _activation(c.activation)(out + c.bias).astype(np.float32)  # type: ignore[operator]
        return out

    def embed(self, patch: np.ndarray, valid: np.ndarray) -> list[float] | None:
        """Mean and standard deviation of the activations over the valid pixels (the halo
        cropped); None when no valid pixel remains."""
        h = self.halo
        x = np.where(valid[..., None], patch, 0.0)
        act = self.activations(x)
        ok = valid[h : valid.shape[0] - h, h : valid.shape[1] - h]
        if not ok.any():
            return None
        v = act[ok].astype(np.float64)
        return [float(a) for a in np.concatenate([v.mean(axis=0), v.std(axis=0)])]


def _functional_layers(config: dict) -> list[dict]:
    return [
        lay for lay in config["config"]["layers"] if lay["class_name"] in ("Functional", "Model")
    ]


def load(data: bytes, name: str = "encoder") -> Encoder:
    """The ``forward`` translator of a ``model.keras`` (bytes)."""
    import h5py

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        config = json.loads(z.read("config.json"))
        weights = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InputError(f"encoder {name}: not a Keras 3 model file ({exc})") from None
    # Keras names the weight groups by class in layer order: functional, functional_1, …
    subs = _functional_layers(config)
    index = next((i for i, s in enumerate(subs) if s["config"].get("name") == "forward"), None)
    if index is None:
        raise InputError(f"encoder {name}: no 'forward' translator (not a changedetect encoder)")
    group = weights["layers"]["functional" if index == 0 else f"functional_{index}"]["layers"]
    convs: list[Conv] = []
    n = 0
    for layer in subs[index]["config"]["layers"]:
        if layer["class_name"] != "Conv2D":
            continue
        vars_ = group["conv2d" if n == 0 else f"conv2d_{n}"]["vars"]
        n += 1
        cfg = layer["config"]
        convs.append(
            Conv(np.asarray(vars_["0"], np.float32), np.asarray(vars_["1"], np.float32),
                 cfg.get("activation") or "linear")
        )  # fmt: skip
        if cfg["name"].endswith("_mix"):
            break
    else:
        raise InputError(f"encoder {name}: the forward translator has no '_mix' layer")
    return Encoder(name=name, bands=int(convs[0].kernel.shape[2]), convs=convs)


def load_registered(model: str) -> Encoder:
    """A registered encoder by name (``candela_sdk.registry``)."""
    from candela_sdk import storage
    from candela_sdk.registry import find_model

    known = find_model(model)
    if known.kind != "registered" or not known.uri:
        raise InputError(
            f"--encoder {model!r} is a {known.kind} model; the embedding needs a registered "
            "encoder (trained weights in the model registry)"
        )
    return load(storage.read_bytes(storage.parse(known.uri).join("model.keras").uri), model)
