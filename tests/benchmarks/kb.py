"""Knowledge-base benchmark (not a test): ETL throughput, question latency on a grown knowledge
base, embedded pyoxigraph vs. rdflib's in-memory store. Writes docs/benchmarks/kb.json.

1. ETL throughput (triples/s, extract + SHACL + load, the service's own ``run``) on the real
   sources: the 538 communes of Gironde, the ECA&D Mérignac precipitation series (the whole
   1920–2024 file when the shared data folder is there, else the repository's 2015–2018 cut) and
   one change result (the synthetic-pixel result of the tests, over central Bordeaux).
2. Growth: N-Triples generated in the ETL's own shapes (same classes, properties and IRIs as
   ``candela_rdf_etl``) over the **real tiling grid** (the MGRS/Sentinel-2 tiles that overlap
   Gironde, from ``images/search/bench.py``) and the **real communes**: one product per tile every
   5 days, one change result per consecutive pair, change areas placed at random points inside
   the real communes the tile covers, each with its ``geo:sfWithin``/``geo:sfIntersects``
   commune and the result's nearest station, as the ETL stores them. Bulk-loaded (pyoxigraph
   ``bulk_load``) next to the real context; loading rate reported.
3. Latency (p50/p95/max, ms) of each ready-made question with its default parameters on the grown
   store, and on a smaller store in both pyoxigraph and rdflib (``Graph``/``Dataset`` in memory):
   rdflib cannot hold 10 M triples in this machine's memory share, so the comparison is made at
   the size given by ``--compare-triples``.

    .venv/bin/python -m tests.benchmarks.kb [--triples 10000000] [--compare-triples 300000] [--only-growth]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform as host
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.kb_helpers import COMMUNES, ECAD, REPO, make_change_result

OUT = REPO / "docs" / "benchmarks" / "kb.json"
SHARED_ECAD = Path(
    "/work/shared/data/weather/ecad-bordeaux-merignac-precipitation/RR_STAID000034.txt"
)
CDL = "https://w3id.org/candela/ontology#"
GEO = "http://www.opengis.net/ont/geosparql#"
IDS = "https://w3id.org/candela/id/"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
PROV = "http://www.w3.org/ns/prov#"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
DCT_ID = "http://purl.org/dc/terms/identifier"


def percentiles(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {
        "p50_ms": round(statistics.median(s), 2),
        "p95_ms": round(s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))], 2),
        "max_ms": round(s[-1], 2),
        "runs": len(s),
    }


# --- 1. ETL throughput ----------------------------------------------------------------------


def etl_throughput(tmp: Path) -> list[dict[str, Any]]:
    from candela import kb

    ecad = SHARED_ECAD if SHARED_ECAD.exists() else ECAD
    change = make_change_result(tmp / "result")
    jobs = [
        ("communes (538, real)", kb.load_arguments("communes", [str(COMMUNES)])),
        (
            f"weather-ecad ({ecad.name}, real, {'1920-2024' if ecad == SHARED_ECAD else '2015-2018'})",
            kb.load_arguments(
                "weather-ecad", [str(ecad)], stations=str(ecad.parent / "stations.txt")
            ),
        ),  # fmt: skip
        (
            "results (1 change result, 2 products)",
            kb.load_arguments("results", [change["run_json"]]),
        ),
    ]
    out = []
    for name, args in jobs:
        started = time.perf_counter()
        result = kb.load(args)
        seconds = time.perf_counter() - started
        out.append({
            "source": name, "rows": result["rows"], "triples": result["triples"],
            "seconds": round(seconds, 2), "triples_per_second": round(result["triples"] / seconds),
        })  # fmt: skip
        print(out[-1])
    return out


# --- 2. growth ------------------------------------------------------------------------------


def gironde_tiles() -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("search_bench", REPO / "images/search/bench.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from shapely.geometry import Polygon

    w, s, e, n = -1.27, 44.19, 0.32, 45.58  # bounds of Gironde (context README)
    area = Polygon([(w, s), (e, s), (e, n), (w, n)])
    return [
        {**t, "poly": Polygon(t["ring"])}
        for t in mod.mgrs_tiles()
        if Polygon(t["ring"]).intersects(area)
    ]


def _lit(value: Any, kind: str) -> str:
    return f'"{value}"^^<{XSD}{kind}>'


def generate(path: Path, target: int, seed: int = 11) -> dict[str, Any]:
    """Write about ``target`` triples of products, results and change areas as N-Triples."""
    from shapely import prepared
    from shapely.geometry import Point, shape

    rng = random.Random(seed)
    tiles = gironde_tiles()
    feats = json.loads(COMMUNES.read_text())["features"]
    communes = [(f["properties"]["code"], shape(f["geometry"])) for f in feats]
    by_tile = {
        t["id"]: [(c, g, prepared.prep(g)) for c, g in communes if g.intersects(t["poly"])]
        for t in tiles
    }
    tiles = [t for t in tiles if by_tile[t["id"]]]
    days = [dt.date(2016, 1, 1) + dt.timedelta(days=5 * i) for i in range(292)]  # 4 years
    pairs = len(tiles) * (len(days) - 1)
    per_area = 12  # triples of one change area (below)
    per_pair = 30  # one product (9), its run (4) and result (16) and their geometry
    areas_per_result = max(1, -(-(target - pairs * per_pair) // (pairs * per_area)))
    station = f"<{IDS}station/ecad/34>"
    written = 0
    counts = {"tiles": len(tiles), "products": 0, "results": 0, "change_areas": 0}

    with path.open("w") as out:

        def t(s: str, p: str, o: str) -> None:
            nonlocal written
            out.write(f"{s} <{p}> {o} .\n")
            written += 1

        for tile in tiles:
            inside = by_tile[tile["id"]]
            prev = None
            for day in days:
                pid = f"S2B_MSIL2A_{day:%Y%m%d}T105619_T{tile['id']}"
                p = f"<{IDS}product/{pid}>"
                for cls in ("Product", "SentinelProduct"):
                    t(p, RDF_TYPE, f"<{CDL}{cls}>")
                t(p, RDF_TYPE, f"<{GEO}Feature>")
                t(p, DCT_ID, f'"{pid}"')
                t(p, f"{CDL}acquisitionDate", _lit(day.isoformat(), "date"))
                t(p, f"{CDL}tile", f'"{tile["id"]}"')
                t(p, f"{CDL}cloudCover", _lit(round(rng.uniform(0, 100), 1), "double"))
                t(p, f"{GEO}hasGeometry", f"<{IDS}product/{pid}/geometry>")
                ring = ", ".join(f"{x} {y}" for x, y in tile["ring"])
                t(
                    f"<{IDS}product/{pid}/geometry>",
                    f"{GEO}asWKT",
                    f'"POLYGON (({ring}))"^^<{GEO}wktLiteral>',
                )
                counts["products"] += 1
                if prev is not None:
                    key = f"bench-{tile['id']}-{day:%Y%m%d}"
                    run = f"<{IDS}run/s2_change_detection/{key}>"
                    t(run, RDF_TYPE, f"<{CDL}WorkflowRun>")
                    t(run, f"{CDL}workflow", '"s2_change_detection"')
                    t(run, f"{CDL}runId", f'"bench__{key}"')
                    t(run, f"{CDL}outputKey", f'"{key}"')
                    r = f"<{IDS}result/{key}/changedetect-cva>"
                    t(r, RDF_TYPE, f"<{CDL}ChangeDetectionResult>")
                    t(r, f"{PROV}wasGeneratedBy", run)
                    t(r, f"{CDL}model", '"cva"')
                    t(r, f"{CDL}beforeProduct", prev[0])
                    t(r, f"{CDL}afterProduct", p)
                    t(r, f"{CDL}beforeDate", _lit(prev[1].isoformat(), "date"))
                    t(r, f"{CDL}afterDate", _lit(day.isoformat(), "date"))
                    t(r, f"{CDL}nearestStation", station)
                    t(r, f"{CDL}stationDistanceKm", _lit(round(rng.uniform(1, 80), 3), "double"))
                    total = 0.0
                    for k in range(areas_per_result):
                        code, geom, prep = inside[rng.randrange(len(inside))]
                        w, s, e, n = geom.bounds
                        for _ in range(50):
                            x, y = rng.uniform(w, e), rng.uniform(s, n)
                            if prep.contains(Point(x, y)):
                                break
                        side = rng.choice((1, 2, 3, 5, 8)) * 0.0001
                        ha = round((side * 111_320) ** 2 * 0.71 / 1e4, 6)
                        total += ha
                        a = f"<{IDS}result/{key}/changedetect-cva/area/{k + 1}>"
                        t(a, RDF_TYPE, f"<{CDL}ChangeArea>")
                        t(a, RDF_TYPE, f"<{GEO}Feature>")
                        t(a, f"{CDL}changeResult", r)
                        t(a, f"{PROV}wasDerivedFrom", r)
                        t(a, f"{CDL}areaHa", _lit(ha, "double"))
                        t(a, f"{CDL}pixelCount", _lit(int(ha * 100) + 1, "integer"))
                        t(a, f"{CDL}meanProbability", _lit(round(rng.uniform(0.5, 1), 4), "double"))
                        t(a, f"{GEO}hasGeometry", a[:-1] + "/geometry>")
                        t(a[:-1] + "/geometry>", RDF_TYPE, f"<{GEO}Geometry>")
                        t(a[:-1] + "/geometry>", f"{GEO}asWKT",
                          f'"POLYGON (({x:.6f} {y:.6f}, {x + side:.6f} {y:.6f}, {x + side:.6f} {y + side:.6f}, '
                          f'{x:.6f} {y + side:.6f}, {x:.6f} {y:.6f}))"^^<{GEO}wktLiteral>')  # fmt: skip
                        t(a, f"{GEO}sfIntersects", f"<{IDS}insee/{code}>")
                        t(a, f"{GEO}sfWithin", f"<{IDS}insee/{code}>")
                        counts["change_areas"] += 1
                    t(r, f"{CDL}changedAreaHa", _lit(round(total, 6), "double"))
                    counts["results"] += 1
                prev = (p, day)
    counts["triples"] = written
    return counts


# --- 3. latency -----------------------------------------------------------------------------


def question_texts() -> dict[str, str]:
    from candela import kb

    return {q.name: kb.bind(q) for q in kb.questions()}


def oxigraph_latency(path: Path, reps: int) -> dict[str, Any]:
    from candela_sdk.kb import EmbeddedKnowledgeBase

    store = EmbeddedKnowledgeBase(path)
    out = {}
    for name, text in question_texts().items():
        store.query(text)  # warm
        ms = []
        rows = 0
        for _ in range(reps):
            started = time.perf_counter()
            answer = store.query(text)
            ms.append((time.perf_counter() - started) * 1000)
            rows = len(json.loads(answer.body)["results"]["bindings"])
        out[name] = {**percentiles(ms), "rows": rows}
        print(name, out[name])
    return out


def rdflib_latency(nt_files: list[Path], reps: int) -> dict[str, Any]:
    from rdflib import Graph

    g = Graph()
    started = time.perf_counter()
    for f in nt_files:
        g.parse(f, format="nt")
    load_s = time.perf_counter() - started
    out: dict[str, Any] = {"load_seconds": round(load_s, 1), "triples": len(g), "questions": {}}
    for name, text in question_texts().items():
        ms = []
        rows = 0
        for _ in range(reps):
            started = time.perf_counter()
            rows = len(list(g.query(text)))
            ms.append((time.perf_counter() - started) * 1000)
        out["questions"][name] = {**percentiles(ms), "rows": rows}
        print("rdflib", name, out["questions"][name])
    return out


def dump_context(store_path: Path, target: Path) -> int:
    """The context graphs (communes, weather, the real-source run) as one N-Triples file."""
    import pyoxigraph as ox

    store = ox.Store.read_only(str(store_path))
    n = 0
    with target.open("wb") as out:
        for q in store.quads_for_pattern(None, None, None, None):
            out.write(f"{q.subject} {q.predicate} {q.object} .\n".encode())
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--triples",
        type=int,
        default=10_000_000,
        help="triples of the grown store (real context + generated)",
    )
    ap.add_argument(
        "--compare-triples", type=int, default=300_000, help="size of the rdflib comparison"
    )
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--only-growth",
        action="store_true",
        help="redo only the grown store (real context + generated), keeping the ETL and comparison "
        "figures already in --out",
    )
    args = ap.parse_args()
    from candela_sdk.kb import EmbeddedKnowledgeBase

    tmp = Path(tempfile.mkdtemp(prefix="candela-kb-bench-"))
    os.environ["CANDELA_HOME"] = str(tmp / "home")
    os.environ.pop("CANDELA_KB_ENDPOINT", None)
    try:
        report: dict[str, Any] = {
            "benchmark": "knowledge base (tests/benchmarks/kb.py)",
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": {"cpus": os.cpu_count(), "python": host.python_version(), "machine": host.machine(),
                     "note": "shared machine (2 cores, other jobs running): figures are indicative"},
        }  # fmt: skip
        if args.only_growth:
            kept = json.loads(args.out.read_text())
            report.update({k: kept[k] for k in ("etl", "comparison")})
            _load_context(tmp)
        else:
            report["etl"] = etl_throughput(tmp)
        store_path = tmp / "home" / "kb"
        context_nt = tmp / "context.nt"
        context_triples = dump_context(store_path, context_nt)

        # rdflib vs pyoxigraph at the comparison size
        if not args.only_growth:
            report["comparison"] = compare(tmp, context_nt, context_triples, args)

        # growth to the target
        big = tmp / "generated.nt"
        started = time.perf_counter()
        counts = generate(big, args.triples - context_triples)
        gen_s = time.perf_counter() - started
        print("generated", counts, f"{gen_s:.0f} s")
        started = time.perf_counter()
        EmbeddedKnowledgeBase(store_path).bulk_load(
            "https://w3id.org/candela/graph/bench/generated", big
        )
        load_s = time.perf_counter() - started
        big.unlink()
        size = sum(f.stat().st_size for f in store_path.rglob("*") if f.is_file())
        report["grown"] = {
            **counts,
            "total_triples": counts["triples"] + context_triples,
            "generate_seconds": round(gen_s, 1),
            "bulk_load_seconds": round(load_s, 1),
            "bulk_load_triples_per_second": round(counts["triples"] / load_s),
            "store_bytes_on_disk": size,
            "questions": oxigraph_latency(store_path, args.reps),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_context(tmp: Path) -> None:
    """The real context alone (no timing): communes, the ECA&D series, one result."""
    from candela import kb

    ecad = SHARED_ECAD if SHARED_ECAD.exists() else ECAD
    change = make_change_result(tmp / "result")
    kb.load(kb.load_arguments("communes", [str(COMMUNES)]))
    kb.load(
        kb.load_arguments("weather-ecad", [str(ecad)], stations=str(ecad.parent / "stations.txt"))
    )
    kb.load(kb.load_arguments("results", [change["run_json"]]))


def compare(tmp: Path, context_nt: Path, context_triples: int, args: Any) -> dict[str, Any]:
    """The same questions on a smaller store, in pyoxigraph and in rdflib's in-memory Graph."""
    from candela_sdk.kb import EmbeddedKnowledgeBase

    small = tmp / "small.nt"
    gen_small = generate(small, max(0, args.compare_triples - context_triples))
    cmp_store = tmp / "cmp-kb"
    cmp = EmbeddedKnowledgeBase(cmp_store)
    cmp.bulk_load("https://w3id.org/candela/graph/bench/context", context_nt)
    cmp.bulk_load("https://w3id.org/candela/graph/bench/generated", small)
    result = {
        "triples": context_triples + gen_small["triples"],
        "pyoxigraph": oxigraph_latency(cmp_store, args.reps),
        "rdflib_memory": rdflib_latency([context_nt, small], max(3, args.reps // 4)),
    }
    shutil.rmtree(cmp_store, ignore_errors=True)
    small.unlink()
    return result


if __name__ == "__main__":
    main()
