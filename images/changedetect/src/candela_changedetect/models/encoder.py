"""Self-supervised convolutional encoder: cross-date translation residual (TensorFlow/Keras).

Method
    A small fully convolutional network (``depth`` 3×3 convolutions, ``features`` channels, a
    1×1 head) learns to translate each date into the other from co-registered patches of the
    pair itself: ``f(before) ≈ after`` and ``g(after) ≈ before`` (Huber loss on per-date
    standardised reflectances). No labels: changes are rare, so the networks learn the scene's
    *no-change* mapping — illumination, atmosphere, phenology and sensor differences, including
    land-cover-specific ones that a global linear normalisation misses — and fail where the
    ground really changed. This is the cross-date "reconstruction" idea of Kalinicheva et al.
    (2018, autoencoders for change detection in Sentinel-2/SPOT series) with the feature-space
    comparison of deep CVA (Saha et al. 2019) replaced by the learned translation, which
    measured better on OSCD (see the README). The score combines the two directions'
    per-band-standardised residual magnitudes ``sqrt(mean_b r_b² / σ_b²)`` by their
    **minimum** (``combine``): a pixel scores high only when *neither* date predicts the other
    (a one-sided failure is mostly a simple surface — water, bare soil, shadow — that is easy to
    predict from a textured one and not the reverse); ``mean`` (RMS of both) is the former
    score. The log score is smoothed by a σ = ``smooth_sigma`` Gaussian over valid pixels.

Probability and threshold
    The shared calibration of the smoothed log score (:mod:`candela_changedetect.calibration`),
    default ``share_cva``: CVA is fitted on the same pair and ``T`` is the quantile of the
    encoder's score that flags the larger (``share_combine: max``) of the share CVA's cut
    (``cva_rule`` nochange_z, ``cva_z`` 3) flags and the share of the encoder's own cut
    (``own_rule`` nochange_z, ``z`` 5). ``epochs`` (8) was chosen by leave-one-city-out on the
    labelled OSCD cities; the rule among the rule families LOO tied within the seed spread, for
    robustness where much changed (README: the former ``robust_z`` z = 4 flagged 0.3 % where
    26 % changed in the stress check). Probability: the shared logistic, p = 0.5 at ``T``, 0.01
    at the median; auto threshold 0.5.

Modes (``mode``)
    ``pair`` (default): train on the pair at run time (``epochs`` over ``patches`` random
    patches). ``pretrained``: weights from a ``.keras`` file (``weights``, usually a registered
    model), optionally fine-tuned on the pair (``epochs`` > 0).

Scale
    Convolutions are *valid*; the image is reflect-padded by the receptive-field radius ``h``
    at its borders and every tile is read with an ``h``-pixel halo, so tiled inference equals
    whole-image inference (no seams; float32 rounding only). Tiles are batched; the batch size
    comes from the device's free memory and halves on out-of-memory until 1, then fails
    clearly. On a GPU, inference runs in mixed precision (float16 compute, float32 output;
    training stays float32): probabilities within 0.05 (mean 0.005) of float32 (tested on CPU).
    On a CPU, results are deterministic for a given ``seed`` (op determinism; tested to 1e-4).

TensorFlow is imported only when this model runs.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from candela_changedetect.blocks import Block, BlockSource
from candela_changedetect.calibration import Cut, fit_cut, fit_share_cut, log_histogram
from candela_changedetect.mathutil import kittler_illingworth_threshold
from candela_changedetect.models.base import CalibratedCut, CalibratedOptions, parse_options

log = logging.getLogger(__name__)


EncoderRule = Literal["robust_z", "nochange_z", "kittler", "otsu", "mixture", "share_cva"]


class EncoderOptions(CalibratedOptions):
    # epochs chosen by leave-one-city-out on the five labelled OSCD cities; the cut rule among
    # those tied by LOO within the seed spread, for robustness where much changed (README)
    threshold_rule: EncoderRule = Field(  # type: ignore[assignment]
        "share_cva",
        description="automatic cut on ln(score) (see candela_changedetect.calibration); "
        "share_cva: cut at a share of pixels set with CVA's automatic cut on the same pair",
    )
    z: float = Field(
        5.0, gt=0, le=20, description="robust_z / nochange_z (and share_cva's own share): spreads"
    )
    own_rule: Literal["robust_z", "nochange_z"] = Field(
        "nochange_z", description="share_cva: the encoder's own cut (at z), whose share combines"
    )
    cva_rule: Literal["robust_z", "nochange_z", "kittler", "otsu", "mixture"] = Field(
        "nochange_z", description="share_cva: CVA's cut rule on the same pair"
    )
    cva_z: float = Field(3.0, gt=0, le=20, description="share_cva: CVA's z")
    share_combine: Literal["cva", "max", "geomean"] = Field(
        "max",
        description="share_cva: flag CVA's share (cva), the larger of it and the encoder's own "
        "robust_z share (max), or their geometric mean (geomean)",
    )
    share_floor: float = Field(
        0.0, ge=0, le=1, description="share_cva: flag at least this fraction of CVA's share"
    )
    mode: Literal["pair", "pretrained"] = Field(
        "pair", description="train on the pair at run time, or use pretrained weights"
    )
    weights: str | None = Field(None, description="URI of a .keras file (mode=pretrained)")
    features: int = Field(16, ge=4, le=256, description="channels of the convolutions")
    depth: int = Field(3, ge=1, le=8, description="number of 3x3 convolutions")
    epochs: int = Field(8, ge=0, le=1000, description="training epochs on the pair")
    refine_epochs: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="reweighted epochs, likely changes left out of the loss (default: 2 in "
        "pair mode, 0 when fine-tuning pretrained weights)",
    )
    patches: int = Field(1024, ge=16, le=1_000_000, description="training patches per epoch")
    patch_size: int = Field(32, ge=8, le=512, description="training patch side (pixels)")
    learning_rate: float = Field(2e-3, gt=0, lt=1)
    smooth_sigma: float = Field(
        1.0, ge=0, le=8, description="Gaussian smoothing of the log score (pixels; 0: none)"
    )
    seed: int = Field(0, description="random seed (deterministic results on CPU)")
    tile_size: int = Field(512, ge=16, le=8192, description="inference tile side (core pixels)")
    batch_size: int | None = Field(None, ge=1, description="tiles per batch (default: memory)")
    mixed_precision: Literal["auto", "on", "off"] = Field("auto", description="auto: on GPU")
    combine: Literal["min", "mean"] = Field(
        "min",
        description="score from the two translation directions: min (change only where "
        "neither date predicts the other) or mean (RMS of both)",
    )


def cva_log_histogram(source: BlockSource) -> np.ndarray:
    """The log histogram of CVA's score (default options) on the pair (``share_cva``)."""
    from candela_changedetect.models.cva import CVAModel

    cva = CVAModel()
    cva.fit(source)
    assert cva.log_hist is not None
    return cva.log_hist


def _gaussian_kernel(sigma: float, radius: int) -> np.ndarray:
    if radius == 0:
        return np.ones(1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smooth_log_score(score: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Normalised separable convolution of ``ln score`` over its finite pixels.

    ``score`` is (rows + 2r, cols + 2r) with r = len(kernel) // 2; returns the (rows, cols)
    core, ``exp`` of the weighted mean log score of the valid neighbours, NaN where the centre
    pixel is not valid.
    """
    r = len(kernel) // 2
    ok = np.isfinite(score)
    ls = np.where(ok, np.log(np.maximum(np.where(ok, score, 1.0), 1e-12)), 0.0)
    w = ok.astype(np.float64)

    def conv(a: np.ndarray) -> np.ndarray:
        n0, n1 = a.shape[0] - 2 * r, a.shape[1] - 2 * r
        t = sum(kernel[k] * a[k : k + n0] for k in range(len(kernel)))
        return np.asarray(sum(kernel[k] * t[:, k : k + n1] for k in range(len(kernel))))

    num, den = conv(ls), conv(w)
    out = np.exp(num / np.maximum(den, 1e-12)).astype(np.float32)
    out[~ok[r : score.shape[0] - r, r : score.shape[1] - r]] = np.nan
    return out


class MemoryExhausted(Exception):
    """Raised by a batch that did not fit (TensorFlow ResourceExhausted, MemoryError)."""


def _gpus() -> list[Any]:
    import tensorflow as tf

    return list(tf.config.list_physical_devices("GPU"))


def free_memory_bytes(gpu: bool) -> int:
    """Free memory of the device that runs the model (GPU: nvidia-smi; CPU: available RAM)."""
    if gpu:
        import subprocess

        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            return int(out.split()[0]) * 1024 * 1024
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return 4 << 30
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2 << 30


def build_translator(bands: int, features: int, depth: int, name: str) -> Any:
    """``depth`` valid 3×3 convolutions + 1×1 head: (N, H+2d, W+2d, B) -> (N, H, W, B)."""
    import keras

    inp = keras.Input(shape=(None, None, bands), name=f"{name}_in")
    x = inp
    for i in range(depth):
        x = keras.layers.Conv2D(
            features, 3, padding="valid", activation="gelu", name=f"{name}_conv{i}"
        )(x)
    x = keras.layers.Conv2D(features, 1, activation="gelu", name=f"{name}_mix")(x)
    out = keras.layers.Conv2D(bands, 1, dtype="float32", name=f"{name}_out")(x)
    return keras.Model(inp, out, name=name)


def build_network(bands: int, features: int, depth: int) -> Any:
    """Both directions in one Keras model: inputs (before, after) -> (after_hat, before_hat)."""
    import keras

    fwd = build_translator(bands, features, depth, "forward")
    bwd = build_translator(bands, features, depth, "backward")
    b = keras.Input(shape=(None, None, bands), name="before")
    a = keras.Input(shape=(None, None, bands), name="after")
    return keras.Model([b, a], [fwd(b), bwd(a)], name="candela_encoder")


class EncoderModel(CalibratedCut):
    name: ClassVar[str] = "encoder"

    def __init__(self, options: EncoderOptions | None = None) -> None:
        self.options = options or EncoderOptions()
        self.source: BlockSource | None = None
        self.net: Any = None
        self.halo = self.options.depth
        sigma = self.options.smooth_sigma
        self.extra = math.ceil(3 * sigma) if sigma > 0 else 0
        self.kernel = _gaussian_kernel(sigma, self.extra)
        self.mean_before: np.ndarray | None = None
        self.std_before: np.ndarray | None = None
        self.mean_after: np.ndarray | None = None
        self.std_after: np.ndarray | None = None
        self.residual_std: np.ndarray | None = None
        self.valid_pixels = 0
        self.threshold_score = math.nan
        self.nochange_mean = math.nan
        self.scale = math.nan
        self.rms = math.nan
        self.cut: Cut | None = None
        self.batch_size: int | None = self.options.batch_size
        self.gpu = False
        self.precision = "float32"
        self.train_seconds = 0.0
        self.train_loss: list[float] = []
        self.refine_excluded = math.nan
        self.registered: dict[str, Any] | None = None  # registry record when run by name
        self._infer: Any = None
        self._cache: np.ndarray | None = None
        self._cache_file: Any = None
        self._cached: set[tuple[int, int]] = set()

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> EncoderModel:
        opts = parse_options(cls.name, EncoderOptions, options)
        if opts.mode == "pretrained" and not opts.weights:
            from candela_sdk.errors import InputError

            raise InputError("invalid --model-options for encoder: mode=pretrained needs weights")
        return cls(opts)

    # --- setup -----------------------------------------------------------------------------

    def _setup_tf(self) -> None:
        import keras
        import tensorflow as tf

        self.gpu = bool(_gpus())
        mp = self.options.mixed_precision
        use_mp = (mp == "on") or (mp == "auto" and self.gpu)
        self.precision = "mixed_float16" if use_mp else "float32"
        # training always in float32 (small net, fixed cost, no loss scaling needed); the
        # inference copy runs in mixed precision on a GPU (see _compile_inference)
        keras.mixed_precision.set_global_policy("float32")
        keras.utils.set_random_seed(self.options.seed)
        if not self.gpu:
            tf.config.experimental.enable_op_determinism()

    def _load_or_build(self, bands: int) -> None:
        import keras

        if self.options.mode == "pretrained":
            from candela_changedetect.registry import local_copy

            path = local_copy(self.options.weights or "")
            try:
                net = keras.saving.load_model(path, compile=False)
            except Exception as exc:
                from candela_sdk.errors import InputError

                raise InputError(
                    f"cannot load encoder weights {self.options.weights}: {exc}"
                ) from None
            shape = net.inputs[0].shape
            if shape[-1] != bands:
                from candela_sdk.errors import InputError

                raise InputError(
                    f"the encoder weights expect {shape[-1]} bands, the input has {bands}"
                )
            # halo from the stored architecture (number of 3x3 convolutions)
            fwd = net.get_layer("forward")
            self.halo = sum(
                1 for layer in fwd.layers if getattr(layer, "kernel_size", (1,))[0] == 3
            )
            self.net = net
        else:
            self.net = build_network(bands, self.options.features, self.options.depth)
            self.halo = self.options.depth

    def _compile_inference(self, bands: int) -> None:
        """One compiled inference graph for every tile shape (2-3x faster than eager calls);
        in mixed precision, a float16-compute copy of the trained network."""
        import keras
        import tensorflow as tf

        net = self.net
        if self.precision == "mixed_float16":
            features = int(net.get_layer("forward").get_layer("forward_conv0").filters)
            keras.mixed_precision.set_global_policy("mixed_float16")
            try:
                net = build_network(bands, features, self.halo)
            finally:
                keras.mixed_precision.set_global_policy("float32")
            net.set_weights(self.net.get_weights())
        spec = tf.TensorSpec([None, None, None, bands], tf.float32)
        self._infer = tf.function(
            lambda b, a: net([b, a], training=False), input_signature=[spec, spec]
        )

    # --- fitting ---------------------------------------------------------------------------

    def fit(self, source: BlockSource) -> None:
        from candela_sdk.errors import NoDataError

        self.source = source
        nb = len(source.band_names)
        if self.registered is not None and list(source.band_names) != self.registered["bands"]:
            from candela_sdk.errors import InputError

            raise InputError(
                f"model {self.registered['name']!r} expects the bands "
                f"{','.join(self.registered['bands'])} in this order; the input has "
                f"{','.join(source.band_names)}"
            )
        n = 0
        s = np.zeros((2, nb))
        q = np.zeros((2, nb))
        for blk in source.blocks():
            for i, arr in enumerate((blk.before, blk.after)):
                x = arr[:, blk.valid].astype(np.float64)
                s[i] += x.sum(axis=1)
                q[i] += (x * x).sum(axis=1)
            n += int(blk.valid.sum())
        if n < 2:
            raise NoDataError("no valid pixel is common to both dates (after nodata and masks)")
        self.valid_pixels = n
        mean = s / n
        std = np.sqrt(np.maximum(q / n - mean**2, 0.0))
        std[std <= 1e-12] = 1.0
        self.mean_before, self.mean_after = mean[0], mean[1]
        self.std_before, self.std_after = std[0], std[1]

        self._setup_tf()
        self._load_or_build(nb)
        if self.options.epochs > 0:
            self._train(source)
        self._compile_inference(nb)

        # residual scale and score RMS on a sample of row strips, then the full histogram
        sample = self._sample_blocks(source)
        sq = np.zeros((2, nb))
        cnt = 0
        for blk in sample:
            rb, ra, valid = self._residuals(blk)
            sq[0] += (ra[:, valid].astype(np.float64) ** 2).sum(axis=1)
            sq[1] += (rb[:, valid].astype(np.float64) ** 2).sum(axis=1)
            cnt += int(valid.sum())
        if cnt == 0:
            raise NoDataError("no valid pixel in the encoder's calibration sample")
        self.residual_std = np.sqrt(np.maximum(sq / cnt, 1e-12))
        total = 0.0
        for blk in sample:
            v = self._scores(blk)[0]
            total += float(np.nansum(v.astype(np.float64) ** 2))
        self.rms = math.sqrt(max(total / cnt, 1e-12))
        hist = np.zeros(0, dtype=np.int64)
        self._open_cache(source)
        for blk in source.blocks():
            sc = self._scores(blk)[1]
            self._store(blk, sc)
            h = log_histogram(sc)
            hist = h if hist.size == 0 else hist + h
        o = self.options
        if o.threshold_rule == "share_cva":
            self.cut = fit_share_cut(
                hist,
                cva_log_histogram(source),
                cva_rule=o.cva_rule,
                cva_z=o.cva_z,
                share_combine=o.share_combine,
                share_floor=o.share_floor,
                own_rule=o.own_rule,
                z=o.z,
                z_floor=o.z_floor,
            )
        else:
            self.cut = fit_cut(hist, o.threshold_rule, z=o.z, z_floor=o.z_floor)
        t, mu0 = self.cut.t, self.cut.mu0
        self.threshold_score = math.exp(t)
        self.nochange_mean = math.exp(mu0)
        self.scale = self.cut.scale
        log.info(
            "encoder: %d valid pixels, RMS score %.3f, threshold %.3f, no-change mean %.3f, "
            "%s, batch %s",
            n,
            self.rms,
            t,
            mu0,
            self.precision,
            self.batch_size,
        )

    def _sample_blocks(self, source: BlockSource, strips: int = 16, rows: int = 64) -> list[Block]:
        """Evenly spaced row strips (the whole raster when it is small)."""
        if source.height <= strips * rows:
            return [source.read_rows(0, source.height)]
        starts = np.linspace(0, source.height - rows, strips).astype(int)
        return [source.read_rows(int(r), rows) for r in starts]

    def _standardise(self, blk: Block) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols, bands) float32 standardised stacks, 0 where invalid."""
        assert self.mean_before is not None and self.std_before is not None
        assert self.mean_after is not None and self.std_after is not None
        out = []
        for arr, m, sd in (
            (blk.before, self.mean_before, self.std_before),
            (blk.after, self.mean_after, self.std_after),
        ):
            z = (arr.astype(np.float32) - m.astype(np.float32)[:, None, None]) / sd.astype(
                np.float32
            )[:, None, None]
            z = np.where(blk.valid[None], z, 0.0).astype(np.float32)
            out.append(np.moveaxis(z, 0, -1))
        return out[0], out[1]

    def _train(self, source: BlockSource) -> None:
        import keras
        import tensorflow as tf

        o = self.options
        h = self.halo
        p = min(o.patch_size, source.height - 2 * h, source.width - 2 * h)
        if p < 4:
            from candela_sdk.errors import InputError

            raise InputError(f"raster too small for the encoder ({source.width}x{source.height})")
        rng = np.random.default_rng(o.seed)
        size = p + 2 * h
        # strips of `size` rows, patches cut at random columns; patches mostly valid
        per_strip = 64
        n_strips = max(1, math.ceil(o.patches / per_strip))
        xb, xa, wv = [], [], []
        for r0 in np.sort(rng.integers(0, source.height - size + 1, n_strips)):
            blk = source.read_rows(int(r0), size)
            zb, za = self._standardise(blk)
            for c0 in rng.integers(0, source.width - size + 1, per_strip):
                v = blk.valid[:, c0 : c0 + size]
                if v.mean() < 0.5:
                    continue
                xb.append(zb[:, c0 : c0 + size])
                xa.append(za[:, c0 : c0 + size])
                wv.append(v[h : h + p, h : h + p])
        if not xb:
            from candela_sdk.errors import NoDataError

            raise NoDataError("no training patch with enough valid pixels for the encoder")
        xb_arr, xa_arr = np.stack(xb), np.stack(xa)
        wv_arr = np.stack(wv).astype(np.float32)[..., None]
        yb = xb_arr[:, h : h + p, h : h + p]
        ya = xa_arr[:, h : h + p, h : h + p]

        net = self.net
        opt = keras.optimizers.Adam(o.learning_rate)
        huber = keras.losses.Huber(delta=1.0, reduction="none")

        @tf.function(reduce_retracing=True)
        def step(b: Any, a: Any, tb: Any, ta: Any, w: Any) -> Any:
            with tf.GradientTape() as tape:
                pa, pb = net([b, a], training=True)
                la = huber(ta, tf.cast(pa, tf.float32))[..., None] * w
                lb = huber(tb, tf.cast(pb, tf.float32))[..., None] * w
                loss = (tf.reduce_sum(la) + tf.reduce_sum(lb)) / (tf.reduce_sum(w) + 1e-6)
            grads = tape.gradient(loss, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables, strict=True))
            return loss

        t0 = time.perf_counter()
        bs = 32
        n = len(xb_arr)

        refine = o.refine_epochs if o.refine_epochs is not None else 2 * (o.mode == "pair")
        total = o.epochs + max(0, refine)

        def run_epochs(count: int, weights: np.ndarray) -> None:
            for _ in range(count):
                order = rng.permutation(n)
                losses = []
                for i in range(0, n, bs):
                    idx = np.sort(order[i : i + bs])
                    loss = step(xb_arr[idx], xa_arr[idx], yb[idx], ya[idx], weights[idx])
                    losses.append(float(loss))
                self.train_loss.append(float(np.mean(losses)))
                log.info(  # a step's progress in its log
                    "progress: encoder epoch %d of %d, loss %.4f, %.0f s",
                    len(self.train_loss),
                    total,
                    self.train_loss[-1],
                    time.perf_counter() - t0,
                )

        run_epochs(o.epochs, wv_arr)
        if refine > 0:
            # reweighting (as IR-MAD does): pixels the first fit flags as change leave the loss
            run_epochs(refine, wv_arr * self._nochange_weights(xb_arr, xa_arr, yb, ya, wv_arr))
        self.train_seconds = time.perf_counter() - t0
        log.info(
            "encoder: trained %d epochs on %d patches of %d px in %.1f s (loss %.4f)",
            o.epochs,
            n,
            p,
            self.train_seconds,
            self.train_loss[-1] if self.train_loss else math.nan,
        )

    def _nochange_weights(
        self, xb: np.ndarray, xa: np.ndarray, yb: np.ndarray, ya: np.ndarray, wv: np.ndarray
    ) -> np.ndarray:
        """1 where a training pixel looks unchanged after the first epochs, 0 where its
        translation residual is above the Kittler-Illingworth cut of the log score."""
        pa, pb = self.net.predict([xb, xa], batch_size=64, verbose=0)
        ra = ya - np.asarray(pa, np.float32)
        rb = yb - np.asarray(pb, np.float32)
        m = wv[..., 0] > 0
        sda = np.sqrt(np.maximum((ra[m] ** 2).mean(axis=0), 1e-12))
        sdb = np.sqrt(np.maximum((rb[m] ** 2).mean(axis=0), 1e-12))
        # the RMS of both directions (not ``combine``): a pixel either translation misses is
        # suspect and leaves training; the min's log histogram has a long lower tail on which
        # the Kittler-Illingworth cut can collapse (on a synthetic pair it left out 99.97 %)
        s = np.sqrt(0.5 * (np.mean((ra / sda) ** 2, -1) + np.mean((rb / sdb) ** 2, -1)))
        ls = np.log(np.maximum(s[m].astype(np.float64), 1e-12))
        edges = np.linspace(ls.min(), ls.max() + 1e-9, 4097)
        t = kittler_illingworth_threshold(np.histogram(ls, edges)[0], edges)
        keep = (np.log(np.maximum(s, 1e-12)) < t).astype(np.float32)[..., None]
        self.refine_excluded = float(1 - keep[..., 0][m].mean())
        log.info(
            "encoder: refinement leaves out %.1f %% of training pixels", 100 * self.refine_excluded
        )
        return keep

    # --- tiled inference -------------------------------------------------------------------

    def _padded_rows(
        self, blk: Block, extra: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Standardised rows of ``blk`` with an ``h + extra`` halo on every side (read from the
        neighbouring rows, reflect-padded at the raster's edges) and the validity on that
        frame: inputs of the network for the block grown by ``extra`` pixels."""
        assert self.source is not None
        h = self.halo + extra
        r0 = max(0, blk.window.row_off - h)
        r1 = min(self.source.height, blk.window.row_off + blk.window.height + h)
        ext = self.source.read_rows(r0, r1 - r0) if h else blk
        zb, za = self._standardise(ext)
        top = h - (blk.window.row_off - r0)
        bottom = h - (r1 - blk.window.row_off - blk.window.height)
        pad = ((top, bottom), (h, h), (0, 0))
        mode: Literal["reflect", "edge"] = (
            "reflect" if min(zb.shape[0], zb.shape[1]) > h else "edge"
        )
        valid = np.pad(ext.valid, pad[:2], mode=mode)
        return np.pad(zb, pad, mode=mode), np.pad(za, pad, mode=mode), valid, self.halo

    def _auto_batch(self, tile_px: int, bands: int) -> int:
        per_tile = tile_px * (2 * bands + 4 * self.options.features) * 4 * 4
        budget = free_memory_bytes(self.gpu) // 4
        return int(max(1, min(64, budget // max(per_tile, 1))))

    def _predict(self, b: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import tensorflow as tf

        try:
            pa, pb = self._infer(b, a)
            return np.asarray(pa, dtype=np.float32), np.asarray(pb, dtype=np.float32)
        except (tf.errors.ResourceExhaustedError, MemoryError) as exc:
            raise MemoryExhausted(str(exc).splitlines()[0] if str(exc) else "OOM") from None

    def _residuals(self, blk: Block, extra: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Standardised-space residuals (bands, rows, cols): before − ĝ(after), after − f̂(before),
        and the validity, on the block grown by ``extra`` pixels on every side."""
        zb, za, valid, h = self._padded_rows(blk, extra)
        rows, cols = blk.window.height + 2 * extra, blk.window.width + 2 * extra
        t = self.options.tile_size
        tiles = [(c, min(t, cols - c)) for c in range(0, cols, t)]
        pa_full = np.zeros((rows, cols, zb.shape[-1]), np.float32)
        pb_full = np.zeros_like(pa_full)
        # group tiles of equal width into batches
        groups: dict[int, list[int]] = {}
        for c, w in tiles:
            groups.setdefault(w, []).append(c)
        for w, starts in groups.items():
            if self.batch_size is None:
                self.batch_size = self._auto_batch((rows + 2 * h) * (w + 2 * h), zb.shape[-1])
            i = 0
            while i < len(starts):
                bsz = min(self.batch_size, len(starts) - i)
                chunk = starts[i : i + bsz]
                b = np.stack([zb[:, c : c + w + 2 * h] for c in chunk])
                a = np.stack([za[:, c : c + w + 2 * h] for c in chunk])
                try:
                    pa, pb = self._predict(b, a)
                except MemoryExhausted as exc:
                    if self.batch_size <= 1:
                        from candela_sdk.errors import ServiceFailure

                        raise ServiceFailure(
                            f"encoder out of memory with batch size 1 ({rows}x{w} px tiles): "
                            f"lower --model-options tile_size or --block-rows ({exc})"
                        ) from None
                    self.batch_size = max(1, bsz // 2)
                    log.warning("encoder: out of memory, batch size -> %d", self.batch_size)
                    continue
                for k, c in enumerate(chunk):
                    pa_full[:, c : c + w] = pa[k]
                    pb_full[:, c : c + w] = pb[k]
                i += bsz
        zb_core = zb[h : h + rows, h : h + cols]
        za_core = za[h : h + rows, h : h + cols]
        ra = np.moveaxis(za_core - pa_full, -1, 0)
        rb = np.moveaxis(zb_core - pb_full, -1, 0)
        return rb, ra, valid[h : h + rows, h : h + cols]

    # --- scoring ---------------------------------------------------------------------------

    def _open_cache(self, source: BlockSource) -> None:
        """Scores of the histogram pass, kept for the output pass (one inference pass less).

        A float32 memory map in the scratch folder (``CANDELA_SCRATCH``, else the temp folder):
        4 bytes per pixel, 480 MB for a full tile pair.
        """
        import tempfile

        self.drop_cache()
        from candela_sdk.settings import get_settings

        scratch = get_settings().scratch
        self._cache_file = tempfile.NamedTemporaryFile(dir=scratch, suffix=".scores")
        self._cache = np.memmap(
            self._cache_file, dtype=np.float32, mode="w+", shape=(source.height, source.width)
        )
        self._cached = set()

    def _store(self, blk: Block, sc: np.ndarray) -> None:
        if self._cache is not None:
            self._cache[blk.window.rows] = sc
            self._cached.add((blk.window.row_off, blk.window.height))

    def drop_cache(self) -> None:
        """Forget cached scores (they are recomputed on demand)."""
        self._cache = None
        self._cached = set()
        if self._cache_file is not None:
            self._cache_file.close()
            self._cache_file = None

    def _raw_score(self, rb: np.ndarray, ra: np.ndarray, valid: np.ndarray) -> np.ndarray:
        assert self.residual_std is not None
        sa = ra / self.residual_std[0].astype(np.float32)[:, None, None]
        sb = rb / self.residual_std[1].astype(np.float32)[:, None, None]
        s = self._combine(np.mean(sa * sa, axis=0), np.mean(sb * sb, axis=0)).astype(np.float32)
        s[~valid] = np.nan
        return s

    def _combine(self, msa: np.ndarray, msb: np.ndarray) -> np.ndarray:
        """Score from the mean squared standardised residuals of both directions.

        ``min``: a pixel scores high only when *neither* date predicts the other. A one-sided
        failure is mostly not ground change: a simple surface (water, bare soil, shadow) is
        easy to predict from a textured one and not the reverse. ``mean``: RMS of both.
        """
        if self.options.combine == "min":
            return np.sqrt(np.minimum(msa, msb))
        return np.sqrt(0.5 * (msa + msb))

    def _scores(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """(raw, smoothed) scores of a block; equal when ``smooth_sigma`` is 0."""
        e = self.extra
        rb, ra, valid = self._residuals(block, e)
        raw = self._raw_score(rb, ra, valid)
        if e == 0:
            return raw, raw
        rows, cols = block.window.height, block.window.width
        return raw[e : e + rows, e : e + cols], smooth_log_score(raw, self.kernel)

    def score(self, block: Block) -> np.ndarray:
        """The change score: the translation residual's magnitude, its logarithm smoothed by a
        Gaussian of ``smooth_sigma`` pixels over the valid pixels (NaN where not valid)."""
        if self._cache is not None and (block.window.row_off, block.window.height) in self._cached:
            return np.array(self._cache[block.window.rows])
        return self._scores(block)[1]

    def save(self, path: str) -> None:
        """Save the trained network as a ``.keras`` file."""
        self.net.save(path)

    def describe(self) -> dict[str, Any]:
        return {
            "options": self.options.model_dump(),
            "registered": self.registered,
            "valid_pixels": self.valid_pixels,
            "halo": self.halo,
            "device": "gpu" if self.gpu else "cpu",
            "precision": self.precision,
            "batch_size": self.batch_size,
            "train_seconds": self.train_seconds,
            "train_loss": self.train_loss,
            "refine_excluded": None if math.isnan(self.refine_excluded) else self.refine_excluded,
            "rms_score": self.rms,
            "score_threshold": self.threshold_score,
            "nochange_mean_score": self.nochange_mean,
            "logistic_scale": self.scale,
            "threshold_rule_applied": None if self.cut is None else self.cut.rule,
            "residual_std": None if self.residual_std is None else self.residual_std.tolist(),
        }
