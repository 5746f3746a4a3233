"""The datamining service end to end on a real PostgreSQL: patches, rows, quicklooks; bad input
(no valid pixel, patch larger than the stack), re-mining, and a failure that leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from candela_mine import features as F
from candela_mine.service import SERVICE
from candela_sdk.contract import main

from .conftest import BANDS, write_stack


def _mine(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(SERVICE, list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]), err


def _rows(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute("SELECT * FROM candela.mine_v_patches ORDER BY row_off, col_off")
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def test_mine_a_stack_then_refuse_to_mine_it_again(
    stack: str, catalog_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ql = tmp_path / "ql"
    args = ["--stack", stack, "--size", "32", "--dataset", "synthetic", "--dsn", catalog_dsn,
            "--quicklooks", str(ql), "--run-id", "r1", "--truth", "water", "forest"]  # fmt: skip
    code, result, _ = _mine(capsys, *args)
    assert code == 0, result
    # 3 × 4 patches of 32 px, the top-left one without valid pixels
    assert (result["candidates"], result["patches"]) == (12, 11)
    rows = _rows(catalog_dsn)
    assert len(rows) == 11 and (rows[0]["row_off"], rows[0]["col_off"]) == (0, 32)
    names = rows[0]["feature_names"]
    assert names == F.feature_names() and rows[0]["feature_set"] == "s2-v1"
    by = {(r["row_off"], r["col_off"]): dict(zip(names, r["features"], strict=True)) for r in rows}
    assert by[(32, 0)]["water_share"] == 1.0 and by[(32, 96)]["vegetation_share"] == 1.0
    r0 = rows[0]
    assert r0["product_id"] == "S2A_TEST_PRODUCT" and r0["acquired"].year == 2020
    assert (
        r0["sensors"] == ["s2"] and r0["crs"] == "EPSG:32630" and r0["truth"] == ["water", "forest"]
    )
    assert r0["mined_by_run"] == "r1" and r0["valid_share"] == 1.0 and r0["embedding"] is None
    # WGS 84 footprints: near Bordeaux (UTM 30N), the patch east of its western neighbour
    assert -1.0 < r0["west"] < r0["east"] < 0.5 and 44.0 < r0["south"] < r0["north"] < 45.5
    ring = r0["footprint"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    # the next patch to the east shares an edge: its lower-left corner is r0's lower-right one
    assert rows[1]["footprint"]["coordinates"][0][0] == pytest.approx(ring[1], abs=1e-9)
    pngs = sorted(p.name for p in ql.iterdir())
    assert len(pngs) == 11 and all(r["quicklook_uri"].endswith(".png") for r in rows)
    from PIL import Image

    with Image.open(Path(rows[0]["quicklook_uri"].removeprefix("file://"))) as img:
        assert img.size == (32, 32) and img.mode == "RGBA"
    stamps = {p.name: p.stat().st_mtime_ns for p in ql.iterdir()}

    code, result, err = _mine(capsys, *args)
    assert code == 3 and "already mined at 32 px (11 patches, run r1)" in err
    assert len(_rows(catalog_dsn)) == 11
    assert {p.name: p.stat().st_mtime_ns for p in ql.iterdir()} == stamps


def test_bad_input_no_valid_pixels_and_a_patch_larger_than_the_stack(
    tmp_path: Path, catalog_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = write_stack(tmp_path / "empty.tif", np.zeros((len(BANDS), 64, 64), np.uint16))
    code, result, err = _mine(capsys, "--stack", empty, "--size", "32", "--dsn", catalog_dsn)
    assert code == 3 and result["outcome"] == "no_data"
    assert "no patches: the stack" in err and "has no valid pixels" in err
    code, result, err = _mine(capsys, "--stack", empty, "--size", "65", "--dsn", catalog_dsn)
    assert code == 2 and "patch size 65 px is larger than the stack (64 × 64 px)" in err
    assert _rows(catalog_dsn) == []


def test_a_failure_while_storing_leaves_no_row_and_no_quicklook(
    stack: str,
    catalog_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import candela_sdk.mining

    real = candela_sdk.mining.copy_patches

    def copy_then_fail(conn: Any, rows: Any) -> int:
        assert real(conn, rows) == 11
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(candela_sdk.mining, "copy_patches", copy_then_fail)
    ql = tmp_path / "ql"
    with pytest.raises(RuntimeError, match="simulated"):
        main(
            SERVICE,
            ["--stack", stack, "--size", "32", "--dsn", catalog_dsn, "--quicklooks", str(ql)],
        )
    assert _rows(catalog_dsn) == []
    assert not ql.exists() or list(ql.iterdir()) == []
    monkeypatch.setattr(candela_sdk.mining, "copy_patches", real)
    code, result, _ = _mine(capsys, "--stack", stack, "--size", "32", "--dsn", catalog_dsn,
                            "--quicklooks", str(ql))  # fmt: skip
    assert code == 0 and len(_rows(catalog_dsn)) == 11


def test_quicklooks_left_by_a_killed_mining_do_not_block_the_stack(
    stack: str,
    catalog_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A mining killed (kill -9) after writing quicklooks but before its commit leaves files
    that no row refers to: the next mining of the stack replaces them instead of refusing
    forever; in a folder the caller chose, an existing file is still never rewritten."""
    from candela_mine.core import default_quicklooks
    from candela_sdk import storage

    monkeypatch.setenv("CANDELA_STORAGE_ROOT", (tmp_path / "storage").as_uri())
    folder = storage.parse(default_quicklooks(stack, 32))
    left = folder.join("r0_c32.png").uri  # (0, 0) has no valid pixel: no patch
    storage.write_bytes(left, b"half of an interrupted mining")
    code, result, err = _mine(capsys, "--stack", stack, "--size", "32", "--dsn", catalog_dsn)
    assert code == 0 and result["patches"] == len(_rows(catalog_dsn)) == 11, err
    assert result["replaced_leftover_quicklooks"] == 1
    assert storage.read_bytes(left).startswith(b"\x89PNG")  # a real quicklook now

    mine_own = tmp_path / "ql"
    mine_own.mkdir()
    (mine_own / "r0_c64.png").write_bytes(b"someone else's file")
    code, _, err = _mine(capsys, "--stack", stack, "--size", "64", "--dsn", catalog_dsn,
                         "--quicklooks", str(mine_own))  # fmt: skip
    assert code != 0 and "nothing rewritten" in err
    assert (mine_own / "r0_c64.png").read_bytes() == b"someone else's file"
