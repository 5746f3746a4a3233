"""``candela-fusion evaluate``: S2-only, S1-only and fused side by side, held out.

**Pixel test** (Sen1Floods11 chip, water / land labels drawn by people): leave-one-quadrant-out
(train on three 256×256 quadrants, test on the fourth; the four held-out confusion matrices are
added). On the held-out quadrant the thickest 0/30/60/90 % of a *real* cloud field (SEN12MS-CR
cloudy − clear, :func:`candela_fusion.data.cloud_field`) are clouded: those pixels take the
cloudy scene's reflectances and are flagged invalid in the optical mask. Rows:

* ``s2``: the S2-only product (clouded pixels unclassified, counted as errors; ``coverage``);
* ``s2_unmasked``: the S2-only network run on every pixel, cloudy reflectances included;
* ``s1``: radar only (clouds do not change it: the same figure at every share);
* ``fused``: the fused network (radar head where the optical pixel is invalid).

**Patch test** (BigEarthNet pairs, 19-class multi-labels; v1 43-class labels mapped to 19):
leave-one-country-out, patch models (global pooling, sigmoid heads), labels at probability ≥ 0.5.
Patches flagged cloudy, shadowed or snow-covered have their optical part marked invalid for the
fused model. Settings (epochs, width, learning rate) are fixed in advance, not tuned on the test
folds; nothing is selected after seeing held-out results. The data are far too small to claim
accuracy: these numbers test the code paths and show the *direction* of the cloud effect.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from candela_fusion import data as fdata
from candela_fusion.classes import BEN19, BEN19_NAMES, NODATA, WATER, ben19_labels
from candela_fusion.models import Bundle
from candela_fusion.nets import OPTICAL_BANDS

if TYPE_CHECKING:
    from candela_fusion.params import EvaluateParams

log = logging.getLogger(__name__)

SHARES = (0.0, 0.3, 0.6, 0.9)
CLOUD_ROI = "ROIs1970_fall_139_p839"  # the SEN12MS-CR triplet with a real cloud over it
V1_COUNTRY = {"33UUP": "Austria", "29UPU": "Ireland", "35VPK": "Finland", "29SND": "Portugal"}


def confusion(truth: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """(n, n+1) counts: rows truth, columns predicted, last column unclassified."""
    p = np.where(pred == NODATA, n, pred).astype(np.int64)
    return np.bincount(truth.astype(np.int64) * (n + 1) + p, minlength=n * (n + 1)).reshape(
        n, n + 1
    )


def scores(cm: np.ndarray, names: list[str]) -> dict[str, Any]:
    n = cm.shape[0]
    total = int(cm.sum())
    tp = np.diag(cm[:, :n]).astype(float)
    pred = cm[:, :n].sum(axis=0).astype(float)
    true = cm.sum(axis=1).astype(float)
    f1 = {}
    for i, name in enumerate(names):
        denom = pred[i] + true[i]
        f1[name] = round(2 * tp[i] / denom, 4) if denom else None
    valid_f1 = [v for v in f1.values() if v is not None]
    return {
        "overall_accuracy": round(float(tp.sum() / total), 4) if total else None,
        "coverage": round(float(cm[:, :n].sum() / total), 4) if total else None,
        "f1": f1,
        "macro_f1": round(float(np.mean(valid_f1)), 4) if valid_f1 else None,
        "confusion_matrix": cm.tolist(),
        "pixels": total,
    }


def _bundle(kind: str, net: Any, norm: Any, task: str = "pixel") -> Bundle:
    return Bundle(kind, kind, task, WATER if task == "pixel" else BEN19, norm, net, {})


def pixel_evaluation(
    floods: str | Path,
    clouds: str | Path,
    epochs: int = 6,
    seed: int = 0,
    width: int = 16,
    shares: tuple[float, ...] = SHARES,
) -> dict[str, Any]:
    from candela_fusion.predict import predict
    from candela_fusion.train import train

    scene = fdata.floods_scene(floods)
    h, w = scene.labels.shape
    field = fdata.cloud_field(clouds, (h, w), CLOUD_ROI)
    cloudy = fdata.cloudy_reflectance(clouds, (h, w), CLOUD_ROI)
    q = h // 2, w // 2
    quads = [(r, c) for r in (0, 1) for c in (0, 1)]
    rows = ("s2", "s2_unmasked", "s1", "fused")
    n = len(WATER.classes)
    cms = {(m, s): np.zeros((n, n + 1), np.int64) for m in rows for s in shares}
    training: list[dict[str, Any]] = []
    for fold, (qr, qc) in enumerate(quads):
        ys, xs = slice(qr * q[0], (qr + 1) * q[0]), slice(qc * q[1], (qc + 1) * q[1])
        patches: dict[str, list[np.ndarray]] = {"optical": [], "radar": [], "labels": []}
        for tr, tc in quads:
            if (tr, tc) == (qr, qc):
                continue
            sub = fdata.Scene(
                scene.optical[tr * q[0] : (tr + 1) * q[0], tc * q[1] : (tc + 1) * q[1]],
                scene.radar[tr * q[0] : (tr + 1) * q[0], tc * q[1] : (tc + 1) * q[1]],
                scene.labels[tr * q[0] : (tr + 1) * q[0], tc * q[1] : (tc + 1) * q[1]],
            )
            for k, v in fdata.scene_patches(sub, 64).items():
                patches[k].append(v)
        store = {k: np.concatenate(v) for k, v in patches.items()}
        # optical dropout for the fused network: the cloud field outside the held-out quadrant
        train_field = np.where(
            np.pad(np.ones(q, bool), ((qr * q[0], (1 - qr) * q[0]), (qc * q[1], (1 - qc) * q[1]))),
            np.nan,
            field,
        )
        train_field = np.nan_to_num(train_field, nan=float(np.nanmin(train_field)))
        nets = {}
        for kind in ("s2", "s1", "fused"):
            net, norm, rec = train(
                store,
                kind,
                n,
                epochs=epochs,
                seed=seed + fold,
                width=width,
                cloud=train_field if kind == "fused" else None,
            )
            nets[kind] = _bundle(kind, net, norm)
            training.append({"fold": fold, **rec})
        truth = scene.labels[ys, xs]
        labelled = truth != fdata.LABEL_NODATA
        radar = scene.radar[ys, xs]
        for share in shares:
            cloud = fdata.cloud_mask(field[ys, xs], share)
            optical = np.where(cloud[..., None], cloudy[ys, xs], scene.optical[ys, xs])
            valid = ~cloud
            for row in rows:
                if row == "s2_unmasked":
                    probs, source = predict(nets["s2"], optical, None, None)
                else:
                    probs, source = predict(nets[row], optical, radar, valid)
                pred = np.where(source == NODATA, NODATA, probs.argmax(-1)).astype(np.uint8)
                cms[(row, share)] += confusion(truth[labelled], pred[labelled], n)
    results = {
        row: {f"{int(round(s * 100))}%": scores(cms[(row, s)], WATER.names) for s in shares}
        for row in rows
    }
    return {
        "dataset": "Sen1Floods11 Spain_7370579 (512x512, hand-labelled water/land)",
        "protocol": "leave-one-quadrant-out (4 folds of 256x256), pooled held-out confusion",
        "clouds": f"real cloud field of SEN12MS-CR {CLOUD_ROI} (cloudy - clear visible "
        "reflectance, smoothed 7x7 twice, mirror-tiled), thickest share clouded; clouded pixels "
        "take the cloudy scene's reflectances and are flagged invalid",
        "classes": WATER.names,
        "results": results,
        "training": training,
    }


# --- patch level --------------------------------------------------------------------------


def _upsample(a: np.ndarray, size: int) -> np.ndarray:
    f = size // a.shape[0]
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1) if f > 1 else a


def bigearthnet_pairs(v1: str | Path | None, v2: str | Path | None) -> list[dict[str, Any]]:
    """Every labelled S1+S2 pair: optical (120, 120, 10), radar (120, 120, 2), 19-class
    multi-hot labels, country, and whether the optical part is spoiled (cloud, shadow, snow)."""
    import rasterio

    from candela_sdk.sentinel1 import read_s1

    pairs: list[dict[str, Any]] = []
    if v1:
        root = Path(v1)
        s1_dirs = sorted(p for p in root.rglob("S1*_IW_GRDH_*") if p.is_dir())
        for s1_dir in s1_dirs:
            meta = json.loads(next(s1_dir.glob("*_labels_metadata.json")).read_text())
            s2_name = meta["corresponding_s2_patch"]
            s2_dir = next(root.rglob(s2_name))
            bands = []
            for b in OPTICAL_BANDS:
                with rasterio.open(s2_dir / f"{s2_name}_{b}.tif") as ds:
                    bands.append(_upsample(ds.read(1).astype("float32") / 10000.0, 120))
            labels = ben19_labels(
                json.loads(next(s2_dir.glob("*_labels_metadata.json")).read_text())["labels"]
            )
            tile = re.search(r"_(\d{2}[A-Z]{3})_", s1_dir.name)
            pairs.append(
                {
                    "id": s2_name,
                    "optical": np.stack(bands, axis=-1),
                    "radar": np.moveaxis(read_s1(s1_dir).data, 0, -1),
                    "labels": labels,
                    "country": V1_COUNTRY.get(tile.group(1) if tile else "", "unknown"),
                    # the README of the sample: the Finnish 2018-02-04 patch is snow-covered
                    "spoiled": "20180204" in s2_name,
                    "version": "v1",
                }
            )
    if v2:
        root = Path(v2)
        arrays = np.load(root / "decoded_pairs.npz")
        for rec in json.loads((root / "decoded_pairs_labels.json").read_text()):
            pid = rec["patch_id"]
            bands = [
                _upsample(arrays[f"{pid}__{b}"].astype("float32") / 10000.0, 120)
                for b in OPTICAL_BANDS
            ]
            pairs.append(
                {
                    "id": pid,
                    "optical": np.stack(bands, axis=-1),
                    "radar": np.moveaxis(arrays[f"{pid}__S1"].astype("float32"), 0, -1),
                    "labels": ben19_labels(rec["labels"]),
                    "country": rec["country"],
                    "spoiled": bool(rec.get("snow") or rec.get("cloud_or_shadow")),
                    "version": "v2",
                }
            )
    return pairs


def patch_evaluation(
    pairs: list[dict[str, Any]], epochs: int = 30, seed: int = 0, width: int = 16
) -> dict[str, Any]:
    from candela_fusion.train import train

    n = len(BEN19_NAMES)
    hot = np.zeros((len(pairs), n), np.float32)
    for i, p in enumerate(pairs):
        for name in p["labels"]:
            hot[i, BEN19_NAMES.index(name)] = 1
    optical = np.stack([p["optical"] for p in pairs])
    radar = np.stack([p["radar"] for p in pairs])
    spoiled = np.array([p["spoiled"] for p in pairs])
    valid = np.broadcast_to(~spoiled[:, None, None], optical.shape[:3]).astype(np.uint8)
    countries = sorted({p["country"] for p in pairs})
    rows = ("s2", "s1", "fused")
    pred = {r: np.zeros_like(hot) for r in rows}
    folds = []
    for fold, country in enumerate(countries):
        test = np.array([p["country"] == country for p in pairs])
        idx = np.flatnonzero(~test)
        store = {"optical": optical, "radar": radar, "labels": hot, "valid": valid}
        for kind in rows:
            net, norm, rec = train(
                store,
                kind,
                n,
                task="patch",
                indices=idx,
                epochs=epochs,
                batch=4,
                seed=seed + fold,
                width=width,
            )
            x: dict[str, Any] = {}
            t = np.flatnonzero(test)
            ok = valid[t][..., None].astype("float32")
            if kind in ("s2", "fused"):
                x["optical"] = norm.optical(optical[t]) * (ok if kind == "fused" else 1.0)
            if kind in ("s1", "fused"):
                x["radar"] = norm.radar(radar[t])
            if kind == "fused":
                x["valid"] = ok
            out = net(x, training=False)
            probs = np.asarray(out["probs"])
            if kind == "fused":
                fallback = np.asarray(out["radar"])
                probs = np.where(spoiled[t][:, None], fallback, probs)
            pred[kind][t] = probs
        folds.append({"held_out": country, "patches": int(test.sum()), "train": int(len(idx))})
    results = {}
    for r in rows:
        yhat = pred[r] >= 0.5
        tp = (yhat & (hot == 1)).sum(axis=0)
        fp = (yhat & (hot == 0)).sum(axis=0)
        fn = (~yhat & (hot == 1)).sum(axis=0)
        f1 = {
            BEN19_NAMES[i]: round(float(2 * tp[i] / (2 * tp[i] + fp[i] + fn[i])), 4)
            for i in range(n)
            if hot[:, i].sum() > 0
        }
        mtp, mfp, mfn = tp.sum(), fp.sum(), fn.sum()
        results[r] = {
            "label_accuracy": round(float((yhat == (hot == 1)).mean()), 4),
            "micro_f1": round(float(2 * mtp / max(1, 2 * mtp + mfp + mfn)), 4),
            "macro_f1": round(float(np.mean(list(f1.values()))), 4) if f1 else None,
            "f1": f1,
            "per_class_tp_fp_fn": {
                BEN19_NAMES[i]: [int(tp[i]), int(fp[i]), int(fn[i])]
                for i in range(n)
                if hot[:, i].sum() or yhat[:, i].sum()
            },
        }
    return {
        "dataset": f"BigEarthNet S1+S2 pairs: {len(pairs)} "
        f"({sum(p['version'] == 'v1' for p in pairs)} v1, "
        f"{sum(p['version'] == 'v2' for p in pairs)} v2), {int(spoiled.sum())} spoiled "
        "(cloud/shadow/snow)",
        "protocol": "leave-one-country-out, labels at p >= 0.5",
        "countries": {c: int(sum(p["country"] == c for p in pairs)) for c in countries},
        "folds": folds,
        "results": results,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Fusion evaluation (held out)", ""]
    px = report.get("pixel")
    if px:
        lines += [
            f"Pixel test: {px['dataset']}; {px['protocol']}.",
            f"Clouds: {px['clouds']}.",
            "",
            "| model | cloud | OA | coverage | F1 land | F1 water | macro F1 |",
            "|---|---|---|---|---|---|---|",
        ]
        for row, by_share in px["results"].items():
            for share, s in by_share.items():
                lines.append(
                    f"| {row} | {share} | {s['overall_accuracy']} | {s['coverage']} | "
                    f"{s['f1']['Land']} | {s['f1']['Water']} | {s['macro_f1']} |"
                )
        lines.append("")
    pt = report.get("patch")
    if pt:
        lines += [
            f"Patch test: {pt['dataset']}; {pt['protocol']}; countries {pt['countries']}.",
            "",
            "| model | label accuracy | micro F1 | macro F1 (classes present) |",
            "|---|---|---|---|",
        ]
        for row, s in pt["results"].items():
            lines.append(f"| {row} | {s['label_accuracy']} | {s['micro_f1']} | {s['macro_f1']} |")
        lines.append("")
    lines.append("One chip and 30 patches: enough to exercise every path, not to claim accuracy.")
    return "\n".join(lines) + "\n"


def run_evaluate(params: EvaluateParams) -> dict[str, Any]:
    from candela_sdk import storage
    from candela_sdk.errors import InputError

    report: dict[str, Any] = {}
    if params.floods:
        if not params.clouds:
            raise InputError("--floods needs --clouds (a SEN12MS-CR folder with s2_cloudy)")
        report["pixel"] = pixel_evaluation(
            params.floods, params.clouds, params.epochs, params.seed, params.width
        )
    if params.bigearthnet_v1 or params.bigearthnet_v2:
        pairs = bigearthnet_pairs(params.bigearthnet_v1, params.bigearthnet_v2)
        if len({p["country"] for p in pairs}) < 2:
            raise InputError("leave-one-country-out needs pairs from at least two countries")
        report["patch"] = patch_evaluation(pairs, params.patch_epochs, params.seed, params.width)
    if not report:
        raise InputError("nothing to evaluate: give --floods/--clouds and/or --bigearthnet-v1/v2")
    text = markdown(report)
    sys.stderr.write(text)
    if params.output:
        storage.write_text(params.output, json.dumps(report, indent=2))
        if params.output.endswith(".json"):
            storage.write_text(params.output[: -len(".json")] + ".md", text)
    return {"report": report, "markdown": text}
