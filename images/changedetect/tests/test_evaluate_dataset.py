"""``candela-changedetect evaluate --labels DIR``: every model on every city of a labelled
dataset (OSCD layout), side by side, per city and averaged; bad input refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from candela_changedetect.cli import dispatch
from candela_changedetect.evaluate import best_f1, evaluate_arrays

BANDS = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")
TWENTY_M = {"B05", "B06", "B07", "B8A", "B11", "B12"}


def _write_band(path: Path, band: np.ndarray, transform: Any) -> None:
    with rasterio.open(
        path, "w", driver="GTiff", width=band.shape[1], height=band.shape[0], count=1,
        dtype="uint16", crs="EPSG:32630", transform=transform,
    ) as ds:  # fmt: skip
        ds.write(band[None])


def _city(root: Path, name: str, make_pair: Any, seed: int, shift_date2: bool = False) -> Any:
    """An OSCD-layout city: one GeoTIFF per band and date (20 m bands at half resolution),
    labels 1/2 without georeferencing. ``shift_date2``: date 2 on another grid (saclay_e)."""
    before, after, truth = make_pair(size=64, square=(20, 36, 24, 40), seed=seed)
    d = root / name
    for date, stack in ((1, before), (2, after)):
        folder = d / f"imgs_{date}"
        folder.mkdir(parents=True)
        x0 = 500000.0 + (30.0 if (date == 2 and shift_date2) else 0.0)
        for i, band in enumerate(BANDS):
            arr = stack[i]
            if band in TWENTY_M:
                arr = arr[::2, ::2]
                tr = from_origin(x0, 4_900_000.0, 20.0, 20.0)
            else:
                tr = from_origin(x0, 4_900_000.0, 10.0, 10.0)
            _write_band(folder / f"T30TXQ_2017_{band}.tif", np.ascontiguousarray(arr), tr)
    (d / "cm").mkdir()
    labels = np.where(truth, 2, 1).astype(np.uint8)
    with rasterio.open(
        d / "cm" / f"{name}-cm.tif", "w", driver="GTiff", width=64, height=64, count=1,
        dtype="uint8",
    ) as ds:  # fmt: skip
        ds.write(labels[None])
    return truth


def _run(argv: list[str], capsys: Any) -> tuple[int, dict[str, Any], str]:
    code = dispatch(argv)
    captured = capsys.readouterr()
    return code, json.loads(captured.out.strip().splitlines()[-1]), captured.err


def test_models_side_by_side_per_city_and_averaged(
    tmp_path: Path, make_pair: Any, capsys: Any
) -> None:
    root = tmp_path / "oscd"
    _city(root, "alpha", make_pair, seed=1)
    _city(root, "beta", make_pair, seed=2)
    _city(root, "gamma", make_pair, seed=3, shift_date2=True)
    (root / "nolabels" / "imgs_1").mkdir(parents=True)  # like OSCD test cities: skipped
    out = tmp_path / "metrics" / "m.json"
    code, res, err = _run(
        ["evaluate", "--labels", str(root), "--models", "cva,irmad", "--tuning", "beta",
         "--output", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, res
    assert res["cities"] == ["alpha", "beta", "gamma"]
    assert res["report_cities"] == ["alpha", "gamma"] and res["tuning_cities"] == ["beta"]
    assert set(res["aligned"]) == {"gamma"}  # date 2 resampled onto date 1's grid
    rows = {(r["city"], r["model"]): r for r in res["rows"]}
    assert len(rows) == 6
    for (city, _model), r in rows.items():
        assert r["role"] == ("tuning" if city == "beta" else "report")
        for k in ("precision", "recall", "f1", "iou", "kappa", "best_f1", "flagged"):
            assert 0 <= r[k] <= 1, (city, k, r[k])
        assert r["best_f1"] >= r["f1"] - 1e-9
    # an obvious square of change: cva finds it in every city (gamma's date 2 is resampled
    # from a shifted grid: its blurred edges flag a little more)
    assert all(rows[(c, "cva")]["f1"] > 0.83 for c in ("alpha", "beta")), rows
    assert rows[("gamma", "cva")]["f1"] > 0.7, rows
    # the reported mean is over the reported cities only
    want = np.mean([rows[("alpha", "cva")]["f1"], rows[("gamma", "cva")]["f1"]])
    assert res["means"]["report"]["cva"]["f1"] == pytest.approx(want)
    assert res["means"]["all"]["cva"]["cities"] == 3
    assert res["means"]["report"]["irmad_over_cva"] == pytest.approx(
        res["means"]["report"]["irmad"]["f1"] / res["means"]["report"]["cva"]["f1"]
    )
    # printed and written: JSON + Markdown table
    assert "| alpha | report | cva |" in err and "| mean (report) | | irmad |" in err
    saved = json.loads(out.read_text())
    assert saved["rows"] == res["rows"]
    assert (out.parent / "m.md").read_text().startswith("| city | role | model |")


def test_best_f1_is_exact_with_ties() -> None:
    """Every distinct probability is a candidate cut, ties stay together (brute force)."""
    rng = np.random.default_rng(0)
    prob = np.round(rng.random((40, 50)), 2).astype(np.float32)  # many ties
    prob[0, :5] = -1  # nodata
    labels = np.where(rng.random((40, 50)) < 0.2 + 0.5 * (prob > 0.7), 2, 1).astype(np.uint8)
    labels[1, :3] = 0  # unlabelled
    f1, cut, share = best_f1(prob, labels)
    best = (0.0, 0.0)
    for t in np.unique(prob[prob >= 0]):
        tp, fp, fn, _ = evaluate_arrays(
            np.where(prob < 0, 255, (prob >= t).astype(np.uint8)), labels
        )
        best = max(best, (2 * tp / (2 * tp + fp + fn), float(t)))
    assert f1 == pytest.approx(best[0]) and cut == pytest.approx(best[1])
    use = (prob >= 0) & (labels > 0)
    assert share == pytest.approx(((prob >= cut) & use).sum() / use.sum())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cities", "alpha,zeta"], "unknown or unlabelled cities zeta"),
        (["--models", "cva,nosuch"], "unknown models nosuch"),
        (["--model-options", '{"encoder": {"seed": 1}}'], "not in --models: encoder"),
        (["--threshold", "1.5"], "strictly between 0 and 1"),
    ],
)
def test_dataset_bad_input(
    tmp_path: Path, make_pair: Any, capsys: Any, extra: list[str], message: str
) -> None:
    root = tmp_path / "oscd"
    _city(root, "alpha", make_pair, seed=1)
    out = tmp_path / "m.json"
    code, res, err = _run(
        ["evaluate", "--labels", str(root), "--models", "cva", "--output", str(out), *extra],
        capsys,
    )
    assert code == 2, res
    assert message in json.dumps(res) + err
    assert not out.exists()


def test_dataset_folder_without_labels_or_a_lone_file(tmp_path: Path, capsys: Any) -> None:
    empty = tmp_path / "empty"
    (empty / "x" / "imgs_1").mkdir(parents=True)
    code, res, err = _run(["evaluate", "--labels", str(empty)], capsys)
    assert code == 2 and "no labelled city" in json.dumps(res) + err
    lone = tmp_path / "labels.tif"
    lone.write_bytes(b"")
    code, res, err = _run(["evaluate", "--labels", str(lone)], capsys)
    assert code == 2 and "give --prediction" in json.dumps(res) + err
    code, res, err = _run(["evaluate", "--labels", str(tmp_path / "missing")], capsys)
    assert code == 2 and "not found" in json.dumps(res) + err


def test_leave_one_city_out_protocol(tmp_path: Path, make_pair: Any, capsys: Any) -> None:
    """``--protocol loo``: each city is scored with the cut rule and setting chosen on the
    others (checked against the per-candidate table), score maps are cached and reused."""
    root = tmp_path / "oscd"
    for i, name in enumerate(("alpha", "beta", "gamma")):
        _city(root, name, make_pair, seed=10 + i)
    out = tmp_path / "loo.json"
    cache = tmp_path / "cache"
    argv = [
        "evaluate", "--labels", str(root), "--protocol", "loo", "--models", "cva,irmad",
        "--grid", '{"irmad": [{"ridge": 0.03}, {"ridge": 0.1}]}', "--cache", str(cache),
        "--output", str(out),
    ]  # fmt: skip
    code, res, err = _run(argv, capsys)
    assert code == 0, res
    assert res["protocol"] == "loo" and res["cities"] == ["alpha", "beta", "gamma"]
    rows = {(r["city"], r["model"]): r for r in res["rows"]}
    assert len(rows) == 6
    for (city, model), r in rows.items():
        cands = res["means"][model]["candidates_all_cities"]
        # the choice for `city` is the best mean F1 over the two other cities
        others = [c for c in res["cities"] if c != city]
        score = {k: np.mean([v["f1_per_city"][c] for c in others]) for k, v in cands.items()}
        chosen = json.dumps(r["chosen"], sort_keys=True)
        assert score[chosen] == pytest.approx(max(score.values()))
        # and its held-out F1 is that candidate's F1 on the city
        assert r["f1"] == pytest.approx(cands[chosen]["f1_per_city"][city])
        assert r["best_f1"] >= r["f1"] - 1e-9
        assert r["true_share"] == pytest.approx(16 * 16 / 64**2, rel=0.01)
        assert 0 <= r["flagged"] <= 1
        if model == "irmad":
            assert r["chosen"]["ridge"] in (0.03, 0.1)
    assert rows[("alpha", "cva")]["f1"] > 0.8  # an obvious square: found with any sane cut
    assert res["ratios"]["irmad_over_cva"] == pytest.approx(
        res["means"]["irmad"]["loo_f1"] / res["means"]["cva"]["loo_f1"]
    )
    assert "| alpha | cva |" in err and "(LOO mean F1 at auto)" in err
    assert json.loads(out.read_text())["rows"] == res["rows"]
    maps = sorted(p.relative_to(cache).parts[0] for p in cache.rglob("*.npy"))
    assert maps == ["cva"] * 3 + ["irmad"] * 6  # one score map per city, model and setting
    # a second run reads the cached maps and gives the same table
    stamp = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}
    code, again, _ = _run(argv, capsys)
    assert code == 0 and again["rows"] == res["rows"]
    assert stamp == {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tuning", "beta"], "--tuning does not apply"),
        (["--grid", '{"encoder": [{}]}'], "--grid for models not in --models: encoder"),
        (["--grid", '{"cva": [{"nosuch": 1}]}'], "invalid --model-options for cva"),
        (["--seeds", "a,b"], "--seeds must be comma-separated integers"),
        (["--cities", "alpha"], "at least 2 labelled cities"),
        (["--protocol", "kfold"], "protocol"),
    ],
)
def test_loo_bad_input(
    tmp_path: Path, make_pair: Any, capsys: Any, extra: list[str], message: str
) -> None:
    root = tmp_path / "oscd"
    _city(root, "alpha", make_pair, seed=1)
    _city(root, "beta", make_pair, seed=2)
    out = tmp_path / "m.json"
    code, res, err = _run(
        ["evaluate", "--labels", str(root), "--models", "cva", "--protocol", "loo",
         "--output", str(out), *extra],
        capsys,
    )  # fmt: skip
    assert code == 2, res
    assert message in json.dumps(res) + err
    assert not out.exists()
