"""Read rasters in place: only the window asked for is read (GDAL range requests on S3, a
windowed read of a local file); the whole file is never copied.

Storage URIs are those the platform records (``file:///…`` on one machine, ``s3://bucket/key``
on a cluster or with ``candela up --s3``). Results open as an :class:`xarray.DataArray` when
``rioxarray`` is installed (``pip install candela-client[xarray]``), as a :class:`Raster`
(numpy array + georeferencing) otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np
import rasterio
import rasterio.session
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from candela_client.config import S3Config

if TYPE_CHECKING:
    import xarray

WGS84 = "EPSG:4326"


class RasterError(Exception):
    """A raster that cannot be opened or read: a bad URI, a missing object, a window outside."""


@dataclass
class Raster:
    """Pixels read through rasterio: ``data`` (bands × rows × cols, nodata masked), with the
    georeferencing of the window read."""

    data: np.ma.MaskedArray
    transform: Any  # affine.Affine
    crs: str | None
    nodata: float | None
    descriptions: tuple[str | None, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def gdal_path(uri: str) -> str:
    """What GDAL opens for a storage URI: a local path or ``/vsis3/bucket/key``.

    ``http(s)://`` links (the platform's download endpoints) are refused: they need a login and
    serve whole files; use the storage URI (``candela:href``) or :meth:`Client.download`.
    """
    u = urlsplit(uri)
    if u.scheme == "file":
        return unquote(u.path)
    if u.scheme == "s3":
        if not u.netloc or not u.path.strip("/"):
            raise RasterError(f"{uri!r} is not an object URI (s3://bucket/key)")
        return f"/vsis3/{u.netloc}/{u.path.lstrip('/')}"
    if u.scheme in ("http", "https"):
        raise RasterError(
            f"{uri!r} is an HTTP download link, not a storage URI: read the asset's "
            "'candela:href' in place, or fetch the file with Client.download"
        )
    if u.scheme == "" and uri:
        return uri
    raise RasterError(f"unsupported URI scheme {u.scheme!r} in {uri!r} (file://, s3://)")


class _S3Session(rasterio.session.Session):
    """The keys and endpoint of an :class:`S3Config` as a rasterio session (rasterio refuses
    AWS keys as plain options; its own AWSSession needs boto3, which the SDK does without)."""

    def __init__(self, options: dict[str, str]) -> None:
        self._options = options

    @classmethod
    def hascreds(cls, config: dict[str, Any]) -> bool:
        return "AWS_ACCESS_KEY_ID" in config or "AWS_NO_SIGN_REQUEST" in config

    def get_credential_options(self) -> dict[str, str]:
        return dict(self._options)


@contextmanager
def open_raster(uri: str, s3: S3Config | None = None) -> Iterator[Any]:
    """A rasterio dataset for ``uri``, inside a GDAL environment for the S3 endpoint ``s3``
    (default: the ``CANDELA_S3_*`` environment). Read only the windows you need."""
    path = gdal_path(uri)
    s3 = s3 if s3 is not None else S3Config.from_env()
    env: dict[str, Any] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
    if s3 is not None and path.startswith("/vsis3/"):
        opts = s3.gdal_options()
        creds = {k: opts.pop(k) for k in list(opts) if k.startswith("AWS_") and "KEY" in k}
        if "AWS_NO_SIGN_REQUEST" in opts:
            creds["AWS_NO_SIGN_REQUEST"] = opts.pop("AWS_NO_SIGN_REQUEST")
        env.update(opts, session=_S3Session(creds))
    if not path.startswith("/vsi") and not Path(path).exists():
        raise RasterError(f"no such file: {path}")
    with rasterio.Env(**env):
        try:
            ds = rasterio.open(path)
        except rasterio.errors.RasterioIOError as exc:
            raise RasterError(f"cannot open {uri}: {exc}") from None
        with ds:
            yield ds


def bbox_window(ds: Any, bbox: Sequence[float], crs: str = WGS84) -> Window:
    """The window of ``ds`` covering ``bbox`` (west, south, east, north in ``crs``), clipped to
    the raster; a :class:`RasterError` when they do not overlap."""
    if len(bbox) != 4:
        raise RasterError(f"bbox needs 4 numbers (west, south, east, north), got {list(bbox)}")
    west, south, east, north = (float(v) for v in bbox)
    if ds.crs is not None and str(crs) != str(ds.crs):
        west, south, east, north = transform_bounds(crs, ds.crs, west, south, east, north)
    full = Window(0, 0, ds.width, ds.height)
    win = from_bounds(west, south, east, north, transform=ds.transform)
    try:
        out = win.round_offsets().round_lengths().intersection(full)
    except rasterio.errors.WindowError:
        raise RasterError(f"bbox {list(bbox)} does not overlap the raster") from None
    if out.width <= 0 or out.height <= 0:
        raise RasterError(f"bbox {list(bbox)} does not overlap the raster")
    return out


def read(
    uri: str,
    *,
    window: Window | None = None,
    bbox: Sequence[float] | None = None,
    bbox_crs: str = WGS84,
    bands: Sequence[int] | None = None,
    s3: S3Config | None = None,
) -> Raster:
    """Read ``bands`` (1-based; default all) of ``uri`` in ``window`` or ``bbox`` (default: the
    whole raster), nodata masked."""
    if window is not None and bbox is not None:
        raise RasterError("give a window or a bbox, not both")
    with open_raster(uri, s3) as ds:
        if bbox is not None:
            window = bbox_window(ds, bbox, bbox_crs)
        indexes = list(bands) if bands else list(range(1, ds.count + 1))
        bad = [b for b in indexes if not 1 <= b <= ds.count]
        if bad:
            raise RasterError(f"{uri} has {ds.count} band(s); no band {bad}")
        data = ds.read(indexes, window=window, masked=True)
        transform = ds.window_transform(window) if window is not None else ds.transform
        return Raster(
            data=data,
            transform=transform,
            crs=str(ds.crs) if ds.crs else None,
            nodata=ds.nodata,
            descriptions=tuple(ds.descriptions[b - 1] for b in indexes),
        )


def has_xarray() -> bool:
    """Whether results can open as xarray (``rioxarray`` installed)."""
    try:
        import rioxarray  # noqa: F401
    except ImportError:
        return False
    return True


def open_dataarray(
    uri: str,
    *,
    bbox: Sequence[float] | None = None,
    bbox_crs: str = WGS84,
    s3: S3Config | None = None,
) -> xarray.DataArray:
    """``uri`` as an :class:`xarray.DataArray` (``band``, ``y``, ``x``, CRS in ``.rio``) through
    rioxarray, loaded (only ``bbox`` when given) while the storage environment is set."""
    if not has_xarray():
        raise RasterError("xarray results need rioxarray: pip install 'candela-client[xarray]'")
    import rioxarray

    with open_raster(uri, s3) as ds:
        window = bbox_window(ds, bbox, bbox_crs) if bbox is not None else None
        da: Any = rioxarray.open_rasterio(ds, masked=True)
        if window is not None:
            da = da.rio.isel_window(window)
        return da.load()  # type: ignore[no-any-return]
