"""Active learning vs random sampling on patches cut from real samples (issue 19, benchmark).

    .venv/bin/python scripts/bench_mining.py [--seeds 5] [--data ../shared/data]

For each category: patches are split (seeded) into a pool the learner may ask about and held-out
patches it never sees; the simulated user starts from one example of the category ("similar to
this one", the same for both strategies) and answers 10 patches per iteration with the truth;
after each iteration the model (:mod:`candela.mining.learner`, fitted on the answers) is scored
on the held-out patches. Reported: F1 per iteration (mean over seeds) and the iterations needed
to reach F1 0.8, active learning (uncertainty-weighted k-center) vs random sampling.

Settings (the classifier's ``C``, the uncertainty weight ``beta``) are chosen by
leave-one-category-out: for each category, the setting with the fewest mean iterations to F1 0.8
(ties: highest mean F1 over the curve) on the *other* categories; the figures reported for a
category are those of the setting chosen without it.

Patches and truth (``../shared/data``, see its README):

* ``sen1floods11``: the Spain chip (S2 L1C 13 bands + S1 VV/VH, 512×512), 16×16 patches; truth
  from the hand-labelled water mask: *water* = ≥ 50 % of the labelled pixels are water.
* ``eolearn``: the Slovenian time series (68 dates of NDVI, pixel land cover), 5×5 patches;
  *forest* / *grassland* = ≥ 50 % of the patch's pixels. Only NDVI exists there: the features
  are NDVI statistics over the season (the feature extractor needs bands), said in the JSON.
* ``bigearthnet``: the 24 v2 S1+S2 pairs, 40×40 sub-patches of the 120×120 patches; truth =
  the parent patch's CORINE labels (*urban*: urban fabric or industrial, *pastures*): weak
  labels (a sub-patch may not contain its parent's class). Forest is on 22 of the 24 parents:
  no category to learn there.
* ``oscd``: the five labelled cities, both dates, 16×16 patches; *urban change* = ≥ 5 % of the
  patch changed (pixel labels); features of date 2, date 1 and their difference.

Writes ``docs/benchmarks/mining_al.json`` and ``docs/benchmarks/mining_al.png``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "docs" / "benchmarks"
sys.path.insert(0, str(REPO / "src"))

from candela.mining import learner  # noqa: E402

TARGET_F1 = 0.8
MAX_ITER = 25
BATCH = 10
HELD_OUT = 0.3
GRID_C = (0.1, 1.0, 10.0)
GRID_BETA = (0.5, 1.0, 2.0, 4.0)
S2_13 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


# --- features --------------------------------------------------------------------------------


def band_features(bands: dict[str, np.ndarray], s1: np.ndarray | None = None) -> np.ndarray:
    """Features of one patch (digital numbers, reflectance × 10 000) through the datamining
    service's extractor (``candela_mine.features``, feature sets ``s2-v1`` / ``s2s1-v1``) when
    it is installed, else the same families computed here (``_own_features``)."""
    mf = _mine_features()
    if mf is None:
        return _own_features(bands, s1)
    names = list(mf.S2_BANDS)
    stack = np.stack([bands[b] for b in names]).astype(np.float64) / 10_000.0
    valid = np.isfinite(stack).all(axis=0) & (stack > 0).all(axis=0)
    feats = mf.patch_features(stack, names, valid, s1)
    return np.asarray(feats, dtype=np.float64)


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a + b != 0, (a - b) / (a + b), 0.0)


def _own_features(bands: dict[str, np.ndarray], s1: np.ndarray | None) -> np.ndarray:
    out: list[float] = []
    for name in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"):
        v = bands[name].astype(np.float64)
        out += [float(v.mean()), float(v.std())]
    g, r, n, s = (bands[k].astype(np.float64) for k in ("B03", "B04", "B08", "B11"))
    for idx in (_nd(n, r), _nd(g, n), _nd(g, s), _nd(s, n)):  # NDVI, NDWI, MNDWI, NDBI
        out += [float(idx.mean()), float(idx.std()), float(np.percentile(idx, 90))]
    gy, gx = np.gradient(n)  # texture: NIR edges
    out.append(float(np.hypot(gx, gy).mean()))
    if s1 is not None:
        for ch in s1:
            out += [float(ch.mean()), float(ch.std())]
    return np.asarray(out)


# --- patches and truth of each dataset -------------------------------------------------------


def tiles(h: int, w: int, size: int) -> list[tuple[int, int]]:
    return [(r, c) for r in range(0, h - size + 1, size) for c in range(0, w - size + 1, size)]


def sen1floods11(data: Path) -> dict[str, Any]:
    import rasterio

    d = data / "fusion" / "sen1floods11-sample"
    with rasterio.open(d / "Spain_7370579_S2Hand.tif") as f:
        s2 = f.read().astype(np.float64)
    with rasterio.open(d / "Spain_7370579_S1Hand.tif") as f:
        s1 = f.read().astype(np.float64)
    with rasterio.open(d / "Spain_7370579_LabelHand.tif") as f:
        lab = f.read(1)
    xs, water = [], []
    for r, c in tiles(*lab.shape, 16):
        lw = lab[r : r + 16, c : c + 16]
        known = lw >= 0
        if known.mean() < 0.5 or not np.isfinite(s1[:, r : r + 16, c : c + 16]).all():
            continue
        bands = {b: s2[i, r : r + 16, c : c + 16] for i, b in enumerate(S2_13)}
        xs.append(band_features(bands, s1[:, r : r + 16, c : c + 16]))
        water.append((lw[known] == 1).mean() >= 0.5)
    return {"x": np.array(xs), "truth": {"water": np.array(water)}, "patch": "16×16 px (10 m)"}


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path)
    except ValueError:
        with gzip.open(path) as f:
            return np.load(f)


def eolearn(data: Path) -> dict[str, Any]:
    d = data / "eolearn-testpatch"
    ndvi = _npy(d / "data" / "NDVI.npy")[..., 0].astype(np.float64)  # (t, h, w)
    valid = _npy(d / "mask" / "IS_VALID.npy")[..., 0].astype(bool)
    lulc = _npy(d / "mask_timeless" / "LULC.npy")[..., 0]
    dem = _npy(d / "data_timeless" / "DEM.npy")[..., 0].astype(np.float64)
    months = [int(s[5:7]) for s in json.loads((d / "timestamps.json").read_text())]  # "YYYY-MM-DD…"
    seasons = {"spring": (3, 4, 5), "summer": (6, 7, 8), "autumn": (9, 10, 11)}
    xs, truth = [], {"forest": [], "grassland": []}
    for r, c in tiles(*lulc.shape, 5):
        v = ndvi[:, r : r + 5, c : c + 5]
        ok = valid[:, r : r + 5, c : c + 5]
        series = np.array([v[t][ok[t]].mean() if ok[t].any() else np.nan for t in range(len(v))])
        feats = [np.nanmean(series), np.nanstd(series), np.nanmax(series), np.nanmin(series)]
        feats += [np.nanpercentile(series, q) for q in (10, 50, 90)]
        for ms in seasons.values():
            sel = [i for i, m in enumerate(months) if m in ms]
            feats.append(np.nanmean(series[sel]))
        px = v[ok]
        feats += [float(px.std()) if px.size else np.nan]  # spatial spread
        feats += [float(dem[r : r + 5, c : c + 5].mean()), float(dem[r : r + 5, c : c + 5].std())]
        lab = lulc[r : r + 5, c : c + 5]
        if (lab == 0).mean() > 0.5:
            continue
        xs.append(feats)
        truth["forest"].append((lab == 2).mean() >= 0.5)
        truth["grassland"].append((lab == 3).mean() >= 0.5)
    return {
        "x": np.array(xs, dtype=np.float64),
        "truth": {k: np.array(v) for k, v in truth.items()},
        "patch": "5×5 px (10 m), NDVI time series (no bands in this sample)",
    }


def bigearthnet(data: Path) -> dict[str, Any]:
    d = data / "fusion" / "bigearthnet-v2-sample"
    arrays = np.load(d / "decoded_pairs.npz")
    meta = json.loads((d / "decoded_pairs_labels.json").read_text())
    groups = {
        "urban": {"Urban fabric", "Industrial or commercial units"},
        "pastures": {"Pastures"},
    }
    xs, truth = [], {k: [] for k in groups}
    for p in meta:
        pid = p["patch_id"]
        full = {}
        for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"):
            a = arrays[f"{pid}__{b}"].astype(np.float64)
            full[b] = np.kron(a, np.ones((120 // a.shape[0],) * 2)) if a.shape[0] != 120 else a
        s1 = arrays[f"{pid}__S1"].astype(np.float64)
        for r, c in tiles(120, 120, 40):
            bands = {b: v[r : r + 40, c : c + 40] for b, v in full.items()}
            xs.append(band_features(bands, s1[:, r : r + 40, c : c + 40]))
            for k, names in groups.items():
                truth[k].append(bool(names & set(p["labels"])))
    return {
        "x": np.array(xs),
        "truth": {k: np.array(v) for k, v in truth.items()},
        "patch": "40×40 px sub-patches of the 24 v2 pairs; parent patch's labels (weak)",
    }


def oscd(data: Path) -> dict[str, Any]:
    import rasterio

    xs, change = [], []
    for city in ("bordeaux", "nantes", "paris", "rennes", "saclay_e"):
        d = data / "oscd" / city
        with rasterio.open(d / "cm" / f"{city}-cm.tif") as f:
            cm = f.read(1)
        dates = []
        for folder in ("imgs_1", "imgs_2"):
            bands = {}
            for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"):
                (path,) = sorted((d / folder).glob(f"*_{b}.tif"))
                with rasterio.open(path) as f:
                    a = f.read(1).astype(np.float64)
                if a.shape != cm.shape:  # 20 m bands (and saclay_e's off-grid date 2)
                    ry = np.linspace(0, a.shape[0] - 1, cm.shape[0]).round().astype(int)
                    rx = np.linspace(0, a.shape[1] - 1, cm.shape[1]).round().astype(int)
                    a = a[np.ix_(ry, rx)]
                bands[b] = a
            dates.append(bands)
        for r, c in tiles(*cm.shape, 16):
            f1 = band_features({b: v[r : r + 16, c : c + 16] for b, v in dates[0].items()})
            f2 = band_features({b: v[r : r + 16, c : c + 16] for b, v in dates[1].items()})
            xs.append(np.concatenate([f2, f1, f2 - f1]))
            change.append((cm[r : r + 16, c : c + 16] == 2).mean() >= 0.05)
    return {
        "x": np.array(xs),
        "truth": {"urban change": np.array(change)},
        "patch": "16×16 px, date 2, date 1 and their difference",
    }


# --- the simulated user ---------------------------------------------------------------------


def run(
    zp: np.ndarray,
    yp: np.ndarray,
    zt: np.ndarray,
    yt: np.ndarray,
    strategy: str,
    c: float,
    beta: float,
    rng: np.random.Generator,
) -> list[float]:
    """Held-out F1 after each iteration (10 answers) of one simulated session: ``zp``/``yp``
    the pool the learner may ask about, ``zt``/``yt`` the held-out patches it never sees."""
    answers: dict[int, bool] = {int(rng.choice(np.flatnonzero(yp))): True}  # the user's example
    f1s = []
    for _ in range(MAX_ITER):
        idx = np.fromiter(answers, dtype=int)
        lab = np.array([answers[i] for i in idx], dtype=int)
        if strategy == "al":
            model = learner.Logistic(c=c).fit(zp[idx], lab) if 0 < lab.sum() < len(lab) else None
            labelled = np.zeros(len(zp), dtype=bool)
            labelled[idx] = True
            proba = None if model is None else model.predict_proba(zp)
            batch = learner.select_batch(
                zp, labelled, proba, BATCH, beta, positives=idx[lab == 1], rng=rng
            )
        else:
            free = np.setdiff1d(np.arange(len(zp)), idx)
            batch = rng.choice(free, size=min(BATCH, len(free)), replace=False)
        if len(batch) == 0:
            break
        for i in batch:
            answers[int(i)] = bool(yp[i])
        idx = np.fromiter(answers, dtype=int)
        lab = np.array([answers[i] for i in idx], dtype=int)
        if 0 < lab.sum() < len(lab):
            m = learner.Logistic(c=c).fit(zp[idx], lab)
            f1s.append(learner.scores(yt, m.predict_proba(zt) >= 0.5)[2])
        else:
            f1s.append(0.0)
    return f1s


def to_target(curve: list[float]) -> int | None:
    for i, f in enumerate(curve, 1):
        if f >= TARGET_F1:
            return i
    return None


def curves(
    x: np.ndarray, y: np.ndarray, seeds: int
) -> dict[tuple[str, float, float], list[list[float]]]:
    out: dict[tuple[str, float, float], list[list[float]]] = {}
    for seed in range(seeds):
        split = np.random.default_rng(1000 + seed).permutation(len(y))
        n_test = int(len(y) * HELD_OUT)
        test, pool = split[:n_test], split[n_test:]
        scaler = learner.Scaler.fit(x[pool])  # as a session: standardised over its pool
        zp, zt = scaler.transform(x[pool]), scaler.transform(x[test])
        yp, yt = y[pool], y[test]
        for c in GRID_C:
            out.setdefault(("random", c, 0.0), []).append(
                run(zp, yp, zt, yt, "random", c, 0.0, np.random.default_rng(seed))
            )
            for beta in GRID_BETA:
                out.setdefault(("al", c, beta), []).append(
                    run(zp, yp, zt, yt, "al", c, beta, np.random.default_rng(seed))
                )
    return out


def summary(runs: list[list[float]]) -> dict[str, Any]:
    hits = [to_target(r) for r in runs]
    reached = [h for h in hits if h is not None]
    length = max(len(r) for r in runs)
    padded = np.array([r + [r[-1]] * (length - len(r)) for r in runs])
    return {
        "iterations_to_f1_0.8": {
            "mean_over_seeds_reaching": round(float(np.mean(reached)), 2) if reached else None,
            "per_seed": hits,
            "seeds_reaching": f"{len(reached)}/{len(hits)}",
        },
        "mean_f1_curve": [round(float(v), 3) for v in padded.mean(axis=0)],
        "final_f1": round(float(padded[:, -1].mean()), 3),
    }


def cost(runs: list[list[float]]) -> tuple[float, float]:
    """Lower is better: mean iterations to F1 0.8 (MAX_ITER + 1 when not reached), then −mean F1."""
    hits = [to_target(r) or MAX_ITER + 1 for r in runs]
    return float(np.mean(hits)), -float(np.mean([np.mean(r) for r in runs]))


def choose(
    all_curves: dict[str, dict[tuple[str, float, float], list[list[float]]]],
    left_out: str,
    strategy: str,
) -> tuple[float, float]:
    settings = {k for k in next(iter(all_curves.values())) if k[0] == strategy}

    def total(s: tuple[str, float, float]) -> tuple[float, float]:
        costs = [cost(all_curves[cat][s]) for cat in all_curves if cat != left_out]
        return float(np.mean([c[0] for c in costs])), float(np.mean([c[1] for c in costs]))

    best = min(sorted(settings), key=total)
    return best[1], best[2]


def plot(results: dict[str, Any], path: Path) -> None:
    """Learning curves (held-out F1 per iteration), one panel per category, PIL only."""
    from PIL import Image, ImageDraw

    cats = list(results)
    cols = 3
    rows = (len(cats) + cols - 1) // cols
    pw, ph, m = 420, 300, 48
    img = Image.new("RGB", (cols * pw, rows * ph + 30), "white")
    draw = ImageDraw.Draw(img)
    draw.text(
        (10, 8),
        "held-out F1 per iteration (10 answers each), mean over seeds:"
        "  blue = active learning, orange = random; dashed = F1 0.8",
        fill="black",
    )
    for n, cat in enumerate(cats):
        x0, y0 = (n % cols) * pw, 30 + (n // cols) * ph
        box = (x0 + m, y0 + 24, x0 + pw - 16, y0 + ph - 36)
        draw.rectangle(box, outline="black")
        draw.text((x0 + m, y0 + 6), cat, fill="black")

        def pt(i: int, f: float, box: tuple[int, int, int, int] = box) -> tuple[float, float]:
            return (box[0] + (box[2] - box[0]) * i / MAX_ITER, box[3] - (box[3] - box[1]) * f)

        for frac in (0.0, 0.5, 1.0):
            draw.text((x0 + 14, pt(0, frac)[1] - 6), f"{frac:.1f}", fill="black")
        for i in (0, 5, 10, 15, 20, 25):
            draw.text((pt(i, 0)[0] - 6, box[3] + 4), str(i), fill="black")
        y8 = pt(0, TARGET_F1)[1]
        for xx in range(int(box[0]), int(box[2]), 8):
            draw.line([(xx, y8), (xx + 4, y8)], fill="gray")
        for key, colour in (("active_learning", (31, 119, 180)), ("random", (255, 127, 14))):
            curve = results[cat][key]["mean_f1_curve"]
            draw.line([pt(i + 1, f) for i, f in enumerate(curve)], fill=colour, width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=BENCH / "mining_al.json")
    ap.add_argument("--only", nargs="*", help="datasets to run (default: all)")
    args = ap.parse_args(argv)
    started = time.monotonic()
    loaders = {
        "sen1floods11": sen1floods11,
        "eolearn": eolearn,
        "bigearthnet": bigearthnet,
        "oscd": oscd,
    }
    datasets = {}
    for name, load in loaders.items():
        if args.only and name not in args.only:
            continue
        t = time.monotonic()
        datasets[name] = load(args.data)
        print(
            f"{name}: {len(datasets[name]['x'])} patches ({time.monotonic() - t:.0f} s)", flush=True
        )
    all_curves: dict[str, dict[tuple[str, float, float], list[list[float]]]] = {}
    info = {}
    for name, ds in datasets.items():
        for cat, y in ds["truth"].items():
            key = f"{name}/{cat}"
            info[key] = {"patches": int(len(y)), "positives": int(y.sum()), "patch": ds["patch"]}
            t = time.monotonic()
            all_curves[key] = curves(ds["x"], y.astype(bool), args.seeds)
            print(
                f"{key}: {int(y.sum())}/{len(y)} positive ({time.monotonic() - t:.0f} s)",
                flush=True,
            )
    results: dict[str, Any] = {}
    for key in all_curves:
        c_al, beta = choose(all_curves, key, "al")
        c_rnd, _ = choose(all_curves, key, "random")
        al = summary(all_curves[key][("al", c_al, beta)])
        rnd = summary(all_curves[key][("random", c_rnd, 0.0)])
        results[key] = {
            **info[key],
            "setting_chosen_without_this_category": {
                "al": {"C": c_al, "beta": beta},
                "random": {"C": c_rnd},
            },
            "active_learning": al,
            "random": rnd,
        }
        print(f"{key}: AL {al['iterations_to_f1_0.8']} vs random {rnd['iterations_to_f1_0.8']}")
    c_all, beta_all = choose(all_curves, "", "al")
    print(f"setting on all categories (the learner's defaults): C={c_all}, beta={beta_all}")
    doc = {
        "what": "iterations of feedback (10 answers each) to reach F1 0.8 on held-out patches, "
        "active learning (uncertainty-weighted k-center, candela.mining.learner) vs random "
        "sampling, both from one example of the category",
        "protocol": {
            "seeds": args.seeds,
            "held_out_share": HELD_OUT,
            "max_iterations": MAX_ITER,
            "batch": BATCH,
            "target_f1": TARGET_F1,
            "selection": f"leave-one-category-out over C in {GRID_C}, beta in {GRID_BETA}",
            "features": "candela_mine.features"
            if _mine_features()
            else "scripts/bench_mining.py _own_features (candela_mine not installed)",
        },
        "setting_on_all_categories": {"C": c_all, "beta": beta_all},
        "categories": results,
        "seconds": round(time.monotonic() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


def _mine_features() -> Any:
    try:
        from candela_mine import features as mf  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return mf


if __name__ == "__main__":
    sys.exit(main())
