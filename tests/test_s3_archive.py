"""The read-only archive (``eodata``) and the results, each with its own S3 settings.

On a real S3 server (SeaweedFS) two identities that may each use one bucket only: the archive's
keys read the archive bucket, the results' keys the results bucket. A step reads the archive in
place and writes results in one process (fusion reads its radar scene from the archive and its
optical stack from the results within one GDAL environment): boto3 and GDAL must each pick the
bucket's own settings (``CANDELA_EODATA_S3_*`` vs ``CANDELA_S3_*``).
"""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from candela import s3server
from candela_sdk import storage
from candela_sdk.errors import InputError

ARCHIVE, RESULTS = "ws-carol", "ws-dave"  # tests/conftest.py: carol may use only ws-carol, …


def _tif(value: int) -> bytes:
    buf = io.BytesIO()
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32630", "transform": from_origin(600000, 5000000, 10, 10)}  # fmt: skip
    with rasterio.MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(np.full((1, 8, 8), value, dtype="uint8"))
        buf.write(mem.read())
    return buf.getvalue()


@pytest.fixture
def two_sets(s3_session: s3server.S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Objects in both buckets; the results' settings (dave) and the archive's (carol) set."""
    key = uuid.uuid4().hex[:8]
    admin = s3_session.client()
    objects = {
        "archive": f"s3://{ARCHIVE}/Sentinel-1/{key}/scene.tif",
        "archive_gdal": f"s3://{ARCHIVE}/Sentinel-1/{key}/other.tif",
        "results": f"s3://{RESULTS}/results/{key}/stack.tif",
    }
    for name, uri in objects.items():
        loc = storage.parse(uri)
        admin.put_object(Bucket=loc.bucket, Key=loc.path, Body=_tif(7 if "archive" in name else 9))
    for k, v in s3_session.env("dave").items():
        monkeypatch.setenv(k, v)
    carol = s3_session.identity("carol")
    monkeypatch.setenv("CANDELA_EODATA_BUCKETS", ARCHIVE)
    monkeypatch.setenv("CANDELA_EODATA_S3_ENDPOINT_URL", s3_session.endpoint_url)
    monkeypatch.setenv("CANDELA_EODATA_S3_ACCESS_KEY_ID", carol.access_key)
    monkeypatch.setenv("CANDELA_EODATA_S3_SECRET_ACCESS_KEY", carol.secret_key)
    return objects


def test_boto3_reads_the_archive_with_its_own_keys(
    two_sets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert storage.read_bytes(two_sets["archive"]) == _tif(7)
    assert storage.size(two_sets["archive"]) == len(_tif(7))
    assert storage.list_names(two_sets["archive"].rsplit("/", 1)[0]) == ["other.tif", "scene.tif"]
    assert storage.read_bytes(two_sets["results"]) == _tif(9)
    out = two_sets["results"].replace("stack.tif", "out.txt")
    storage.write_text(out, "written with the results' keys")
    assert storage.exists(out)
    # the results' keys alone may not read the archive: the storage layer must not use them there
    monkeypatch.delenv("CANDELA_EODATA_S3_ACCESS_KEY_ID")
    with pytest.raises(InputError, match="access denied"):
        storage.read_bytes(two_sets["archive"])


def test_gdal_reads_archive_and_results_in_one_environment(
    two_sets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with storage.rasterio_env():
        with rasterio.open(storage.gdal_path(two_sets["archive"])) as radar:
            assert int(radar.read(1)[0, 0]) == 7
        with rasterio.open(storage.gdal_path(two_sets["results"])) as optical:
            assert int(optical.read(1)[0, 0]) == 9
    # without the archive's own settings GDAL reads it with the results' keys: refused
    monkeypatch.delenv("CANDELA_EODATA_S3_ACCESS_KEY_ID")
    monkeypatch.delenv("CANDELA_EODATA_S3_ENDPOINT_URL")
    with (
        storage.rasterio_env(),
        pytest.raises(rasterio.errors.RasterioIOError),
        rasterio.open(storage.gdal_path(two_sets["archive_gdal"])),
    ):
        pass
