"""Searching the local catalogue (real PostgreSQL), through the library and the CLI contract."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from candela_sdk import contract
from candela_sdk.errors import ExitCode, InputError
from candela_search import SERVICE, SearchParams, as_feature_collection, catalog, search
from candela_search.cli import run as cli_run
from candela_search.ingest import recognise

BIGEARTHNET = Path(__file__).resolve().parents[3] / "data" / "bigearthnet"
BORDEAUX_BBOX = [-0.60, 44.82, -0.56, 44.86]
# a triangle whose bbox covers the OSCD Bordeaux rasters but whose shape passes ~1 km south-west
# of them: its hypotenuse runs from (-0.40, 44.60) to (-0.80, 45.00)
TRIANGLE = {
    "type": "Polygon",
    "coordinates": [[[-0.80, 44.60], [-0.40, 44.60], [-0.80, 45.00], [-0.80, 44.60]]],
}


@dataclass
class Catalogue:
    dsn: str
    l2a: str
    l1c_old: str
    l1c_new: str
    l1c_east: str


@pytest.fixture
def loaded(catalog_dsn: str, oscd_bordeaux: Path, make_safe, footprints, monkeypatch) -> Catalogue:
    """OSCD Bordeaux, the BigEarthNet pair and SAFE metadata fixtures in a fresh catalogue."""
    T30TXQ_FULL, T30TXQ_PARTIAL = footprints["T30TXQ"], footprints["T30TXQ-partial"]
    T30TYQ_FULL = footprints["T30TYQ"]

    l2a = make_safe(level="L2A", baseline="02.08", cloud=12.5, footprint=T30TXQ_FULL)
    start = dt.datetime(2019, 3, 20, 10, 50, 21)
    common = dict(level="L1C", start=start, spacecraft="Sentinel-2A", absolute_orbit=19568)
    old = make_safe(**common, baseline="02.07", cloud=3.0, footprint=T30TXQ_PARTIAL)
    new = make_safe(
        **common,
        baseline="05.00",
        cloud=3.1,
        footprint=T30TXQ_PARTIAL,
        generation=dt.datetime(2023, 6, 1, 10, 10, 10),
    )
    east = make_safe(**common, baseline="02.07", cloud=8.0, tile="T30TYQ", footprint=T30TYQ_FULL)
    recs = recognise(oscd_bordeaux) + recognise(BIGEARTHNET)
    for p in (l2a, old, new, east):
        recs += recognise(p)
    assert catalog.add(catalog_dsn, recs) == (8, 0)
    monkeypatch.setenv("CANDELA_DATABASE_URL", catalog_dsn)
    names = [p.name.removesuffix(".SAFE") for p in (l2a, old, new, east)]
    return Catalogue(catalog_dsn, *names)


def ids(result) -> list[str]:
    return [p["id"] for p in result.products]


def test_search_by_bbox_sorted_and_deduplicated(loaded: Catalogue) -> None:
    result = search({"collection": "sentinel-2-l1c", "bbox": BORDEAUX_BBOX})
    assert ids(result) == ["oscd-bordeaux-20160504", "oscd-bordeaux-20171026", loaded.l1c_new]
    assert result.duplicates == [loaded.l1c_old]
    out = result.to_dict()
    assert out["count"] == 3 and len(out["items"]) == 3
    assert [i["id"] for i in out["items"]] == ids(result)
    first = out["products"][0]
    assert set(first) == {"id", "href", "datetime", "collection", "tile"}
    assert first["datetime"] == "2016-05-04T00:00:00Z" and first["tile"] == "T30TXQ"
    assert first["href"].endswith("/data/oscd/bordeaux/imgs_1")
    json.dumps(out)


def test_search_by_dates(loaded: Catalogue) -> None:
    r = search({"collection": "sentinel-2-l1c", "start": "2016-01-01", "end": "2016-12-31"})
    assert ids(r) == ["oscd-bordeaux-20160504"]
    # the end day is included (the product was sensed at 11:01 that day)
    r = search({"collection": "sentinel-2-l1c", "start": "2017-10-26", "end": "2017-10-26"})
    assert ids(r) == ["oscd-bordeaux-20171026"]
    r = search({"collection": "sentinel-2-l1c", "start": "2019-03-20"})
    # another tile of the same datatake is not a duplicate; same time: sorted by id
    assert ids(r) == [loaded.l1c_east, loaded.l1c_new]


def test_search_by_tile(loaded: Catalogue) -> None:
    r = search({"collection": "sentinel-2-l2a", "tile": "T33UUP"})
    assert ids(r) == ["S2A_MSIL2A_20170613T101031_87_48"]
    r = search({"collection": "sentinel-1-grd", "tile": "T33UUP"})
    assert ids(r) == ["S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"]
    r = search({"collection": "sentinel-2-l1c", "tile": "T30TYQ"})
    assert ids(r) == [loaded.l1c_east]


def test_search_by_cloud_cover(loaded: Catalogue) -> None:
    base = {"collection": "sentinel-2-l2a", "bbox": BORDEAUX_BBOX}
    assert ids(search({**base, "max_cloud": 20})) == [loaded.l2a]  # 12.5 %
    assert search({**base, "max_cloud": 10}).count == 0
    # unknown cover (OSCD) is kept, known cover above the limit is not
    r = search({"collection": "sentinel-2-l1c", "bbox": BORDEAUX_BBOX, "max_cloud": 0})
    assert ids(r) == ["oscd-bordeaux-20160504", "oscd-bordeaux-20171026"]


def test_exact_geometry_excludes_bbox_only_hits(loaded: Catalogue) -> None:
    from shapely.geometry import shape

    w, s, e, n = shape(TRIANGLE).bounds
    by_bbox = search({"collection": "sentinel-2-l1c", "bbox": [w, s, e, n]})
    assert "oscd-bordeaux-20160504" in ids(by_bbox)
    by_shape = search({"collection": "sentinel-2-l1c", "aoi": json.dumps(TRIANGLE)})
    # the partial-tile product and the tile east of it do cross the triangle
    assert ids(by_shape) == [loaded.l1c_east, loaded.l1c_new]
    assert set(by_shape.outside) == {"oscd-bordeaux-20160504", "oscd-bordeaux-20171026"}
    # and the other way round: a bbox inside the product's bbox but where the partial tile has
    # no data (south-west of its diagonal edge)
    r = search({"collection": "sentinel-2-l1c", "bbox": [-1.15, 44.2, -0.95, 44.4]})
    assert r.count == 0 and r.outside == [loaded.l1c_new]


def test_aoi_from_file_and_feature_collection(loaded: Catalogue, tmp_path: Path) -> None:
    aoi = tmp_path / "bordeaux.geojson"
    aoi.write_text(
        (Path(__file__).resolve().parents[3] / "data/oscd/bordeaux/bordeaux.geojson").read_text()
    )
    r = search(SearchParams(collection="sentinel-2-l1c", aoi=str(aoi), end="2018-01-01"))
    assert ids(r) == ["oscd-bordeaux-20160504", "oscd-bordeaux-20171026"]
    fc = as_feature_collection(r)
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 2
    assert as_feature_collection(r.to_dict()) == fc


def test_limit(loaded: Catalogue) -> None:
    r = search({"collection": "sentinel-2-l1c", "limit": 1})
    assert ids(r) == ["oscd-bordeaux-20160504"] and r.truncated == 3


# --- through the CLI contract -------------------------------------------------------------


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_cli_result(loaded: Catalogue, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CANDELA_DATABASE_URL")
    monkeypatch.setenv("CANDELA_RESULT_PATH", str(tmp_path / "result.json"))
    argv = ["--collection", "sentinel-2-l1c", "--bbox", *map(str, BORDEAUX_BBOX)]
    code = contract.main(SERVICE, [*argv, "--start", "2016-01-01", "--dsn", loaded.dsn])
    assert code == ExitCode.OK
    out = _last_json(capsys.readouterr().out)
    assert out["outcome"] == "done" and out["count"] == 3
    assert json.loads((tmp_path / "result.json").read_text()) == out


def test_cli_no_data_exit_3(loaded: Catalogue, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CANDELA_RESULT_PATH", str(tmp_path / "result.json"))
    argv = ["--collection", "sentinel-1-grd", "--bbox", *map(str, BORDEAUX_BBOX)]
    code = contract.main(SERVICE, [*argv, "--start", "2016-01-01", "--end", "2016-12-31"])
    assert code == ExitCode.NO_DATA == 3
    captured = capsys.readouterr()
    out = _last_json(captured.out)
    assert out["outcome"] == "no_data"
    assert out["error"] == (
        "no product of sentinel-1-grd over bbox [-0.6, 44.82, -0.56, 44.86] "
        "between 2016-01-01 and 2016-12-31"
    )
    assert "no data: no product of sentinel-1-grd" in captured.err
    assert json.loads((tmp_path / "result.json").read_text())["outcome"] == "no_data"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bbox", "-0.56", "44.82", "-0.60", "44.86"], "west -0.56 must be less than east -0.6"),
        (["--bbox", "-0.60", "44.86", "-0.56", "44.82"], "south 44.86 must be less than north"),
        (["--bbox", "-0.60", "44.82", "200", "44.86"], "east 200.0 is outside -180..180"),
        (["--bbox", "-0.60", "44.82", "-0.56"], "--bbox: List should have at least 4 items"),
        (["--start", "2018-01-01", "--end", "2017-01-01"], "end 2017-01-01 is before start"),
        (["--max-cloud", "120"], "--max-cloud: Input should be less than or equal to 100"),
        (["--tile", "30TXQ"], "'30TXQ' is not an MGRS tile like T30TXQ"),
        (["--aoi", "/no/such/file.geojson"], "neither an existing file nor GeoJSON text"),
        (["--aoi", '{"type": "Point", "coordinates": [500000, 4960000]}'], "is it in WGS 84?"),
        (["--bbox", "0", "0", "1", "1", "--aoi", "{}"], "either --bbox or --aoi, not both"),
        (["--provider", "eofinder"], "--provider: Input should be 'local', 'stac' or 'cdse'"),
        (["--limit", "0"], "--limit: Input should be greater than or equal to 1"),
    ],
)
def test_cli_bad_params_exit_2(args: list[str], message: str, capsys) -> None:
    code = contract.main(SERVICE, ["--collection", "sentinel-2-l2a", *args])
    assert code == ExitCode.BAD_INPUT == 2
    captured = capsys.readouterr()
    assert message in captured.err
    out = _last_json(captured.out)
    assert out["outcome"] == "bad_input" and message in out["error"]


def test_cli_bad_collection_exit_2(capsys) -> None:
    assert contract.main(SERVICE, ["--collection", "landsat-8"]) == 2
    assert "--collection: Input should be 'sentinel-2-l2a'" in capsys.readouterr().err


def test_cli_without_database_is_bad_input(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CANDELA_DATABASE_URL", raising=False)
    monkeypatch.setenv("CANDELA_HOME", str(tmp_path / "no-platform"))
    assert contract.main(SERVICE, ["--collection", "sentinel-2-l2a"]) == 2
    err = capsys.readouterr().err
    assert "pass --dsn or set CANDELA_DATABASE_URL" in err and "no-platform" in err


def test_dsn_of_the_running_embedded_platform(monkeypatch, tmp_path: Path) -> None:
    """Without --dsn or CANDELA_DATABASE_URL, the catalogue of the platform at CANDELA_HOME."""
    import os

    from candela_search.catalog import resolve_dsn

    monkeypatch.delenv("CANDELA_DATABASE_URL", raising=False)
    monkeypatch.setenv("CANDELA_HOME", str(tmp_path))
    (tmp_path / "pg").mkdir()
    pid_file = tmp_path / "pg" / "postmaster.pid"
    # postmaster.pid: pid, data dir, start time, port, socket dir, ...
    pid_file.write_text(f"{os.getpid()}\n{tmp_path / 'pg'}\n1700000000\n5432\n/tmp/sock\n")
    assert resolve_dsn() == "postgresql://postgres@/candela?host=/tmp/sock"
    assert resolve_dsn("postgresql://elsewhere/x") == "postgresql://elsewhere/x"
    pid_file.write_text("999999999\n/x\n0\n5432\n/tmp/sock\n")  # not running
    with pytest.raises(InputError, match="start the platform"):
        resolve_dsn()


def test_cli_feature_collection(loaded: Catalogue, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CANDELA_RESULT_PATH", str(tmp_path / "result.json"))
    argv = ["--collection", "sentinel-2-l1c", "--bbox", *map(str, BORDEAUX_BBOX)]
    assert cli_run([*argv, "--format", "featurecollection"]) == 0
    fc = _last_json(capsys.readouterr().out)
    assert fc["type"] == "FeatureCollection"
    assert [f["id"] for f in fc["features"]] == [
        "oscd-bordeaux-20160504",
        "oscd-bordeaux-20171026",
        loaded.l1c_new,
    ]
    # the result file keeps the contract's form
    assert json.loads((tmp_path / "result.json").read_text())["count"] == 3
    # errors keep the contract's error result and exit code
    s1 = ["--collection", "sentinel-1-grd", "--bbox", *map(str, BORDEAUX_BBOX)]
    assert cli_run([*s1, "--format=featurecollection"]) == 3
    assert _last_json(capsys.readouterr().out)["outcome"] == "no_data"
    with pytest.raises(SystemExit) as exc:
        cli_run([*argv, "--format", "csv"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    "bbox_args",
    [
        ["--bbox", "-0.68", "44.83", "-0.56", "44.93"],
        ["--bbox=-0.68,44.83,-0.56,44.93"],
        ["--bbox", "-0.68,44.83,-0.56,44.93"],
        ["--bbox", "-0.68, 44.83, -0.56, 44.93"],
    ],
)
def test_cli_bbox_forms(loaded: Catalogue, capsys, bbox_args: list[str]) -> None:
    """W S E N and W,S,E,N; a western longitude such as Bordeaux's is a value, not an option."""
    assert cli_run(["--collection", "sentinel-2-l1c", *bbox_args]) == 0
    out = _last_json(capsys.readouterr().out)
    assert out["count"] == 3, out


def test_bbox_text_from_python() -> None:
    p = SearchParams.model_validate(
        {"collection": "sentinel-2-l1c", "bbox": "-0.68,44.83,-0.56,44.93"}
    )
    assert p.bbox == [-0.68, 44.83, -0.56, 44.93]


def test_service_declaration() -> None:
    argv = SERVICE.argv_for(
        {
            "collection": "sentinel-2-l2a",
            "bbox": BORDEAUX_BBOX,
            "start": "2016-05-01",
            "tile": "T30TXQ",
        }
    )
    assert argv[:3] == ["candela-search", "--collection", "sentinel-2-l2a"]
    assert argv[argv.index("--bbox") + 1 : argv.index("--bbox") + 5] == [
        str(v) for v in BORDEAUX_BBOX
    ]
    ns = contract.build_parser(SERVICE).parse_args(argv[1:])
    assert ns.tile == "T30TXQ" and ns.start == "2016-05-01"
    schema = SERVICE.describe()["parameters"]
    assert set(schema["$defs"]["Collection"]["enum"]) == {
        "sentinel-2-l2a",
        "sentinel-2-l1c",
        "sentinel-1-grd",
    }
    assert schema["properties"]["tile"]["pattern"] == r"^T\d{2}[A-Z]{3}$"
    # an AOI given as a GeoJSON dict travels as JSON text
    p = SearchParams.model_validate({"collection": "sentinel-2-l2a", "aoi": TRIANGLE})
    assert json.loads(p.aoi or "") == TRIANGLE


def test_pair_s1_nearest_within_window(loaded: Catalogue) -> None:
    """Each S2 product gets its nearest S1 acquisition within the window, or None."""
    result = search({"collection": "sentinel-2-l2a", "pair_s1_days": 10})
    matches = {p["id"]: p["s1_match"] for p in result.products}
    ben = "S2A_MSIL2A_20170613T101031_87_48"
    assert matches[ben]["id"] == "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
    assert matches[ben]["days_apart"] == pytest.approx((6 * 3600 + 40 * 60 + 12) / 86400, abs=1e-3)
    assert all(m is None for pid, m in matches.items() if pid != ben)  # Bordeaux: no S1
    item = next(i for i in result.items if i["id"] == ben)
    assert item["properties"]["candela:s1_match"]["id"].startswith("S1A_IW_GRDH")
    # without the option the result is unchanged (no s1_match key)
    assert "s1_match" not in search({"collection": "sentinel-2-l2a"}).products[0]
