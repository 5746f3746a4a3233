"""Products in an ``eodata`` bucket (CREODIAS key layout) on a real S3 server: search, read in
place (windowed, only the needed byte ranges move), and the pipeline's services on S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window, from_bounds

from candela import s3server
from candela_sdk import storage
from candela_search import catalog, eodata, ingest, search


@pytest.fixture
def eodata_catalogue(s3_server: s3server.S3Server, catalog_dsn: str, oscd_bordeaux: Path) -> str:
    scan = ingest.scan([oscd_bordeaux])
    mirrored = eodata.mirror(scan.records, "s3://eodata")
    catalog.add(catalog_dsn, mirrored)
    return catalog_dsn


def test_products_in_creodias_layout(eodata_catalogue: str, s3_server: s3server.S3Server) -> None:
    day = "s3://eodata/Sentinel-2/MSI/L1C/2016/05/04"
    assert storage.list_names(day) == ["oscd-bordeaux-20160504"]
    names = storage.list_names(f"{day}/oscd-bordeaux-20160504/imgs_1")
    assert len([n for n in names if n.endswith(".tif")]) == 13
    assert storage.list_names("s3://eodata/Sentinel-2/MSI/L1C/2017/10") == ["26"]


def test_search_then_windowed_read_in_place(
    eodata_catalogue: str,
    s3_server: s3server.S3Server,
    oscd_bordeaux: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = search(
        {
            "collection": "sentinel-2-l1c",
            "bbox": [-0.58, 44.83, -0.55, 44.85],
            "start": "2016-05-01",
            "end": "2016-05-31",
            "tile": "T30TXQ",
        },
        dsn=eodata_catalogue,
    )
    assert result.count == 1
    item = result.items[0]
    href = item["assets"]["B04"]["href"]
    assert href.startswith("s3://eodata/Sentinel-2/MSI/L1C/2016/05/04/oscd-bordeaux-20160504/")
    local = next((oscd_bordeaux / "imgs_1").glob("*_B04.tif"))
    size = s3_server.client().head_object(Bucket="eodata", Key=storage.parse(href).path)[
        "ContentLength"
    ]
    with rasterio.open(local) as src:
        window = (
            from_bounds(-0.58, 44.83, -0.57, 44.84, src.transform).round_offsets().round_lengths()
        )
        expected = src.read(1, window=window)
    assert 0 < window.width < 200 and 0 < window.height < 200

    # count what the server sends back: GDAL talks to S3 through a counting proxy
    with s3server.CountingProxy(s3_server.port) as proxy:
        monkeypatch.setenv("CANDELA_S3_ENDPOINT_URL", proxy.endpoint_url)
        # no block cache across opens, so each read fetches what it needs
        nocache = {"CPL_VSIL_CURL_NON_CACHED": "/vsis3/eodata/"}
        with storage.rasterio_env(**nocache), rasterio.open(storage.gdal_path(href)) as ds:
            got = ds.read(1, window=window)
        aoi_bytes = proxy.bytes_down
        proxy.reset()
        with storage.rasterio_env(**nocache), rasterio.open(storage.gdal_path(href)) as ds:
            whole = ds.read(1)
        whole_bytes = proxy.bytes_down
    np.testing.assert_array_equal(got, expected)
    with rasterio.open(local) as src:
        np.testing.assert_array_equal(whole, src.read(1))
    assert whole_bytes >= size
    assert aoi_bytes < 0.35 * size, (aoi_bytes, size)


def _service(args: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_preprocess_and_changedetect_on_s3(
    eodata_catalogue: str, s3_server: s3server.S3Server, oscd_bordeaux: Path, tmp_path: Path
) -> None:
    """The pipeline's steps read their inputs from SeaweedFS and write their outputs there."""
    result = search({"collection": "sentinel-2-l1c", "tile": "T30TXQ"}, dsn=eodata_catalogue)
    hrefs = [p["href"] for p in result.products]
    assert len(hrefs) == 2 and all(h.startswith("s3://eodata/Sentinel-2/MSI/L1C/") for h in hrefs)
    env = s3_server.env()
    out = "s3://candela/runs/test-s3"
    stacks = []
    for i, href in enumerate(hrefs):
        grid = ["--grid-like", stacks[0]] if stacks else []
        res = _service(
            ["candela-preprocess", "--product", href, "--output", f"{out}/stacks/{i}.tif", *grid],
            env,
        )
        stacks.append(res["stack"] if "stack" in res else f"{out}/stacks/{i}.tif")
    assert storage.exists(stacks[0]) and storage.exists(stacks[1])
    # the same product preprocessed from the local files gives the same pixels
    local_stack = tmp_path / "local.tif"
    _service(
        [
            "candela-preprocess",
            "--product",
            str(oscd_bordeaux / "imgs_1"),
            "--output",
            str(local_stack),
        ],
        {},
    )
    with storage.rasterio_env():  # the fixture set the admin's CANDELA_S3_* variables
        with rasterio.open(storage.gdal_path(stacks[0])) as a, rasterio.open(local_stack) as b:
            np.testing.assert_array_equal(
                a.read(window=Window(0, 0, 256, 256)), b.read(window=Window(0, 0, 256, 256))
            )
    res = _service(
        [
            "candela-changedetect",
            "detect",
            "--before",
            stacks[0],
            "--after",
            stacks[1],
            "--model",
            "cva",
            "--output",
            f"{out}/changes/",
        ],
        env,
    )
    names = storage.list_names(f"{out}/changes")
    for n in ("change_probability.tif", "change_mask.tif", "statistics.json", "item.json"):
        assert n in names, names
    stats = json.loads(storage.read_text(f"{out}/changes/statistics.json"))
    assert stats  # written by the service, read back from S3
    assert res
