"""Land-cover extractors (a run's land-cover maps, CORINE, RPG, BigEarthNet), their refusals,
and the vineyard question on a small knowledge base built from fixtures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.features import shapes
from rasterio.transform import from_origin
from rasterio.warp import transform, transform_geom
from rdflib import URIRef
from shapely.geometry import shape
from shapely.ops import unary_union

from candela import kb as platform_kb
from candela_rdf_etl.core import run
from candela_rdf_etl.model import CDL, RDF, double, new_graph
from candela_rdf_etl.params import RdfEtlParams
from candela_rdf_etl.shacl import check
from candela_sdk.errors import InputError
from candela_sdk.kb import open_kb

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
RPG = FIXTURES / "FIXTURE-rpg-parcelles-bordeaux-demo-not-real-data.geojson"
RPG_BAD = FIXTURES / "FIXTURE-rpg-wrong-schema-not-real-data.geojson"
CLC_GPKG = FIXTURES / "FIXTURE-clc2018-bordeaux-not-real-data.gpkg"
CLC_TIF = FIXTURES / "FIXTURE-clc2018-bordeaux-not-real-data.tif"
METEOFRANCE = FIXTURES / "FIXTURE-Q_33_meteofrance-RR-T-Vent-not-real-data.csv"
BEN = REPO / "data" / "bigearthnet" / "S2A_MSIL2A_20170613T101031_87_48"
PREFIXES = (
    "PREFIX cdl: <https://w3id.org/candela/ontology#>\nPREFIX prov: <http://www.w3.org/ns/prov#>\n"
)


def _select(query: str) -> list[dict]:
    return open_kb().select(PREFIXES + query)


def _triples() -> int:
    return int(open_kb().select("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")[0]["n"])


def _landcover_run(tmp_path: Path, values: tuple[int, ...] = (1, 2)) -> tuple[str, np.ndarray]:
    """A run summary listing one land-cover item (fusion layout) over Bordeaux; its raster."""
    xs, ys = transform("EPSG:4326", "EPSG:32630", [-0.5792], [44.8378])
    t = from_origin(round(xs[0]) - 300, round(ys[0]) + 300, 10, 10)
    data = np.full((60, 60), 1, dtype="uint8")
    data[:20, :30] = 2
    data[40:, 40:] = 3
    data[:, 58:] = 255
    out = tmp_path / "run" / "landcover" / "s2-2017"
    out.mkdir(parents=True)
    with rasterio.open(
        out / "landcover.tif", "w", driver="GTiff", width=60, height=60, count=1,
        dtype="uint8", crs="EPSG:32630", transform=t, nodata=255,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    names = {1: "vegetation", 2: "built-up", 3: "water"}
    item = {
        "type": "Feature", "stac_version": "1.1.0", "id": "landcover-fused-test",
        "geometry": None, "properties": {"datetime": "2017-10-26T10:50:00Z",
                                          "candela:class_table": "bigearthnet-7"},
        "assets": {"landcover": {"href": "./landcover.tif", "nodata": 255,
                                 "classification:classes": [
                                     {"value": v, "name": names[v], "description": names[v]}
                                     for v in values]}},
    }  # fmt: skip
    (out / "item.json").write_text(json.dumps(item))
    summary = {"workflow": "s2_change_detection", "run_id": "manual__lc", "output_key": "k1",
               "results": [], "landcover": [{"item": (out / "item.json").as_uri()}]}  # fmt: skip
    path = tmp_path / "run" / "run.json"
    path.write_text(json.dumps(summary))
    return str(path), data


def test_landcover_run_zones_are_linked_to_the_run(home, tmp_path):
    summary, data = _landcover_run(tmp_path, (1, 2, 3))
    args = platform_kb.load_arguments("landcover-run", [summary])
    result = run(RdfEtlParams(**args))
    assert result["graph"].endswith("landcover-run/s2_change_detection-k1")
    rows = _select(
        "SELECT ?code (SUM(?ha) AS ?ha) (SUM(?px) AS ?px) WHERE { ?z a cdl:LandCoverZone ; "
        "cdl:landCoverClass ?code ; cdl:areaHa ?ha ; cdl:pixelCount ?px ; prov:wasGeneratedBy "
        '?run . ?run cdl:runId "manual__lc" } GROUP BY ?code ORDER BY ?code'
    )
    for r in rows:  # 10 m pixels: 0.01 ha each; pixels counted from the raster itself
        expected = int((data == int(r["code"])).sum())
        assert int(r["px"]) == expected
        assert r["ha"] == pytest.approx(expected * 0.01)
    assert [r["code"] for r in rows] == ["1", "2", "3"]


def test_landcover_run_with_an_undeclared_class_is_refused(home, tmp_path):
    run(RdfEtlParams(source="rpg", inputs=[str(RPG)]))
    before = _triples()
    summary, _ = _landcover_run(tmp_path, (1, 2))  # value 3 is in the raster, not in the item
    with pytest.raises(InputError, match=r"class values \[3\] are not in"):
        run(RdfEtlParams(**platform_kb.load_arguments("landcover-run", [summary])))
    assert _triples() == before


def test_corine_vector_and_raster(home):
    run(RdfEtlParams(source="corine", inputs=[str(CLC_GPKG)]))
    rows = _select(
        "SELECT ?code ?name ?ha WHERE { ?z cdl:landCoverScheme ?s ; cdl:landCoverClass ?code ; "
        "cdl:landCoverClassName ?name ; cdl:areaHa ?ha } ORDER BY ?code"
    )
    assert [(r["code"], r["name"]) for r in rows] == [
        ("112", "Discontinuous urban fabric"),
        ("211", "Non-irrigated arable land"),
        ("221", "Vineyards"),
    ]
    # the fixture's boxes are 1x2 km, 1x1 km, 1x1 km in EPSG:3035 (equal area)
    assert [r["ha"] for r in rows] == pytest.approx([200, 100, 100], rel=1e-6)
    result = run(RdfEtlParams(source="corine", inputs=[str(CLC_TIF)]))
    with rasterio.open(CLC_TIF) as src:
        data = src.read(1)
    assert result["land_cover_zones"] >= 3
    by_code = {}
    for z in _select("SELECT ?z ?code ?ha WHERE { ?z cdl:landCoverClass ?code ; cdl:areaHa ?ha }"):
        if z["z"].rsplit("/", 1)[-1].isdigit():  # the raster's zones are numbered
            by_code[z["code"]] = by_code.get(z["code"], 0) + z["ha"]
    for code, ha in by_code.items():  # 100 m pixels: 1 ha each
        assert ha == pytest.approx(int((data == int(code)).sum()), rel=1e-6)
    assert set(by_code) == {"112", "211", "221"}


def test_bigearthnet_real_patch_labels(home):
    run(RdfEtlParams(source="bigearthnet", inputs=[str(BEN)]))
    meta = json.loads(next(BEN.glob("*_labels_metadata.json")).read_text())
    rows = _select(
        "SELECT ?name ?code ?wkt WHERE { ?z a cdl:LabelledPatch ; cdl:landCoverClassName ?name ;"
        " <http://www.opengis.net/ont/geosparql#hasGeometry>/"
        "<http://www.opengis.net/ont/geosparql#asWKT> ?wkt }"
    )
    assert sorted({r["name"] for r in rows}) == sorted(meta["labels"])
    codes = {r["code"] for r in _select("SELECT ?code WHERE { ?z cdl:landCoverClass ?code }")}
    assert codes == {"211", "243"}  # CLC codes of the two label names
    c = meta["coordinates"]
    cx, cy = transform("EPSG:32633", "EPSG:4326", [(c["ulx"] + c["lrx"]) / 2],
                       [(c["uly"] + c["lry"]) / 2])  # fmt: skip
    from shapely import wkt

    centre = wkt.loads(rows[0]["wkt"]).centroid
    assert centre.x == pytest.approx(cx[0], abs=1e-4) and centre.y == pytest.approx(cy[0], abs=1e-4)


def test_bad_rpg_schema_is_refused_whole_and_kb_unchanged(home):
    run(RdfEtlParams(source="corine", inputs=[str(CLC_GPKG)]))
    before = _triples()
    with pytest.raises(InputError, match=r"4 of 4 row\(s\) failed") as err:
        run(RdfEtlParams(source="rpg", inputs=[str(RPG_BAD)]))
    assert "feature 0: missing RPG column(s) ['CODE_CULTU']" in str(err.value)
    assert _triples() == before


def test_shapes_refuse_a_changed_share_above_one():
    g = new_graph()
    node = URIRef("https://w3id.org/candela/id/rpg/x/change/1")
    g.add((node, RDF.type, CDL.LandCoverChange))
    g.add((node, CDL.changedZone, URIRef("https://w3id.org/candela/id/rpg/x")))
    g.add((node, CDL.inResult, URIRef("https://w3id.org/candela/id/result/y")))
    g.add((node, CDL.changedAreaHa, double(1.0)))
    g.add((node, CDL.changedFraction, double(1.5)))
    with pytest.raises(InputError, match="SHACL"):
        check(g, "test")
    g.set((node, CDL.changedFraction, double(0.5)))
    check(g, "test")  # the same node with a share in [0, 1] passes


# --- the vineyard question -------------------------------------------------------------------


def _expected_parcels(mask_uri: str, group: str, min_share: float) -> dict[str, float]:
    """Parcels of ``group`` whose changed share exceeds ``min_share``, from the fixture's
    geometry and the change mask itself (in the mask's UTM grid)."""
    with rasterio.open(mask_uri.removeprefix("file://")) as src:
        mask, t, crs = src.read(1), src.transform, src.crs
    changed = unary_union(
        [shape(g) for g, _ in shapes((mask == 1).astype("uint8"), mask=mask == 1, transform=t)]
    )
    out = {}
    for f in json.loads(RPG.read_text())["features"]:
        p = f["properties"]
        parcel = shape(transform_geom("EPSG:4326", crs, f["geometry"]))
        share = parcel.intersection(changed).area / parcel.area
        if p["CODE_GROUP"] == group and share > min_share:
            out[p["ID_PARCEL"]] = share
    return out


def _tmin(night: str, lon: float, lat: float) -> float:
    """TN of the fixture's station nearest to (lon, lat) on ``night``."""
    from candela_rdf_etl.model import haversine_km

    rows = list(csv.DictReader(
        (ln for ln in METEOFRANCE.read_text().splitlines() if not ln.startswith("#")),
        delimiter=";",
    ))  # fmt: skip
    nearest = min(rows, key=lambda r: haversine_km(lon, lat, float(r["LON"]), float(r["LAT"])))
    day = night.replace("-", "")
    return next(
        float(r["TN"])
        for r in rows
        if r["NUM_POSTE"] == nearest["NUM_POSTE"] and r["AAAAMMJJ"] == day
    )


@pytest.mark.parametrize("parcels_first", [False, True])
def test_vineyard_question_on_fixtures(home, change_result, parcels_first):
    loads = [
        platform_kb.load_arguments("results", [change_result["run_json"]]),
        {"source": "weather-meteofrance", "inputs": [str(METEOFRANCE)]},
    ]
    rpg = {"source": "rpg", "inputs": [str(RPG)]}
    for args in [rpg, *loads] if parcels_first else [*loads, rpg]:
        run(RdfEtlParams(**args))
    item = json.loads(Path(change_result["item"].removeprefix("file://")).read_text())
    expected = _expected_parcels(item["assets"]["change_mask"]["href"], "21", 0.30)
    assert expected  # the fixture has a vineyard above the threshold (and others below)
    q = platform_kb.question("vineyard-change")
    _names, rows = platform_kb.rows(platform_kb.ask(platform_kb.bind(q)))
    assert {r["parcel_id"] for r in rows} == set(expected)
    features = {f["properties"]["ID_PARCEL"]: f for f in json.loads(RPG.read_text())["features"]}
    for r in rows:
        assert float(r["changed_percent"]) == pytest.approx(expected[r["parcel_id"]] * 100, abs=0.2)
        c = shape(features[r["parcel_id"]]["geometry"]).centroid
        assert float(r["tmin_c"]) == _tmin("2017-04-27", c.x, c.y)
        assert r["run"].endswith("/k123") and r["result"]  # linked to the run and the result
    # a stricter threshold than every share leaves nothing
    _n, none = platform_kb.rows(platform_kb.ask(platform_kb.bind(q, {"min_percent": "100.5"})))
    assert none == []


def test_landcover_run_minimum_mapping_unit_merges_small_areas(home, tmp_path):
    summary, data = _landcover_run(tmp_path, (1, 2, 3))
    sizes = {v: int((data == v).sum()) for v in (1, 2, 3)}
    mmu = sizes[3] + 1  # the water block is smaller: merged into its neighbour
    run(RdfEtlParams(**platform_kb.load_arguments("landcover-run", [summary]), min_pixels=mmu))
    rows = _select(
        "SELECT ?code (SUM(?px) AS ?px) WHERE { ?z cdl:landCoverClass ?code ; cdl:pixelCount ?px }"
        " GROUP BY ?code"
    )
    got = {r["code"]: int(r["px"]) for r in rows}
    assert "3" not in got and got["2"] == sizes[2]
    assert sum(got.values()) == sum(sizes.values())  # the map is still covered
