"""Helpers of the preprocess tests: sample paths and builders of SAFE-shaped products.

No real Sentinel-2 SAFE product is small enough to ship, so the SAFE fixtures build small
SAFE-*shaped* products from the real OSCD Bordeaux bands: every band is converted losslessly to
JPEG 2000 with GDAL's JP2OpenJPEG driver (georeferencing kept in the GeoJP2 box) and placed where
a real SAFE keeps it, next to a minimal but correctly structured MTD_MSIL1C.xml/MTD_MSIL2A.xml
(the elements this service reads sit at the same paths as in real ESA metadata). What is
synthetic: the MTD values (product name, sensing time, baseline 04.00 with a -1000 offset — the
OSCD pixel values are NOT actually offset), and the L2A scene classification (SCL), derived from
the blue band by a threshold.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "data"
BORDEAUX = DATA / "oscd" / "bordeaux"
SACLAY = DATA / "oscd" / "saclay_e_subset"
BIGEARTHNET = DATA / "bigearthnet" / "S2A_MSIL2A_20170613T101031_87_48"

ALL_BANDS = [
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
]
RES = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
SENSING = "2016-05-04T10:50:32.026Z"
TILE_DT = "T30TXQ_20160504T105032"


def band_file(folder: Path, band: str) -> Path:
    (path,) = folder.glob(f"*_{band}.tif")
    return path


def read_band(path: Path | str) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(1)


# --- SAFE-shaped products -------------------------------------------------------------------------


def _to_jp2(src: Path | str, dst: Path, array: np.ndarray | None = None) -> None:
    """Lossless JPEG 2000 copy of ``src`` (or of ``array`` with ``src``'s georeferencing)."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    dst.parent.mkdir(parents=True, exist_ok=True)
    if array is None:
        rio_copy(src, dst, driver="JP2OpenJPEG", QUALITY="100", REVERSIBLE="YES")
        return
    with rasterio.open(src) as ds:
        profile = ds.profile
    profile.update(
        driver="GTiff", dtype=array.dtype.name, count=1, height=array.shape[0], width=array.shape[1]
    )
    profile.pop("nodata", None)
    tmp = dst.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as out:
        out.write(array, 1)
    rio_copy(tmp, dst, driver="JP2OpenJPEG", QUALITY="100", REVERSIBLE="YES")
    tmp.unlink()


def _image_list(paths: list[str]) -> str:
    return "\n".join(f"            <IMAGE_FILE>{p}</IMAGE_FILE>" for p in paths)


def _mtd(level: str, safe_name: str, granule: str, image_files: list[str] | None) -> str:
    """A minimal MTD_MSIL1C.xml / MTD_MSIL2A.xml with the structure of ESA's (PSD 14.x)."""
    if level == "L1C":
        root, xsd, plevel, ptype = "Level-1C_User_Product", "Level-1C", "Level-1C", "S2MSI1C"
        radiometry = (
            '      <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>\n'
            "      <Radiometric_Offset_List>\n"
            + "".join(
                f'        <RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>\n'
                for i in range(13)
            )
            + "      </Radiometric_Offset_List>\n"
        )
    else:
        root, xsd, plevel, ptype = "Level-2A_User_Product", "Level-2A", "Level-2A", "S2MSI2A"
        radiometry = (
            "      <QUANTIFICATION_VALUES_LIST>\n"
            '        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>\n'
            '        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>\n'
            '        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>\n'
            "      </QUANTIFICATION_VALUES_LIST>\n"
            "      <BOA_ADD_OFFSET_VALUES_LIST>\n"
            + "".join(
                f'        <BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>\n' for i in range(13)
            )
            + "      </BOA_ADD_OFFSET_VALUES_LIST>\n"
        )
    organisation = ""
    if image_files is not None:
        organisation = (
            "      <Product_Organisation>\n        <Granule_List>\n"
            f'          <Granule datastripIdentifier="S2A_OPER_MSI_{level}_DS_TEST" '
            f'granuleIdentifier="{granule}" imageFormat="JPEG2000">\n'
            f"{_image_list(image_files)}\n"
            "          </Granule>\n        </Granule_List>\n      </Product_Organisation>\n"
        )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_{xsd}.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{SENSING}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{SENSING}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{safe_name}</PRODUCT_URI>
      <PROCESSING_LEVEL>{plevel}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>{ptype}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>
      <GENERATION_TIME>2016-05-04T16:30:55.000000Z</GENERATION_TIME>
      <Datatake datatakeIdentifier="GS2A_20160504T105032_004524_N04.00">
        <SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>{SENSING}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>51</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
{organisation}    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
{radiometry}    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:{root}>
"""


def build_safe_l1c(dest: Path, source: Path = BORDEAUX / "imgs_1") -> Path:
    """A SAFE-shaped L1C product (see the module docstring) built from OSCD bands."""
    name = f"S2A_MSIL1C_20160504T105032_N0400_R051_{TILE_DT.split('_')[0]}_20160504T163055.SAFE"
    safe = dest / name
    granule = "L1C_T30TXQ_A004524_20160504T105035"
    rels = []
    for band in ALL_BANDS:
        rel = f"GRANULE/{granule}/IMG_DATA/{TILE_DT}_{band}"
        _to_jp2(band_file(source, band), safe / f"{rel}.jp2")
        rels.append(rel)
    (safe / "MTD_MSIL1C.xml").write_text(_mtd("L1C", name, granule, rels))
    return safe


def scl_from_blue(b02_20m: np.ndarray) -> np.ndarray:
    """Synthetic SCL: 9 (cloud, high probability) where the 20 m blue is in its top 10 %,
    0 (no data) on the first 6 rows, 4 (vegetation) elsewhere."""
    scl = np.full(b02_20m.shape, 4, dtype="uint8")
    scl[b02_20m > np.percentile(b02_20m, 90)] = 9
    scl[:6, :] = 0
    return scl


def build_safe_l2a(dest: Path, with_image_list: bool = True) -> Path:
    """A SAFE-shaped L2A product: R10m/R20m/R60m folders (R20m also holds a 20 m B02, which the
    service must NOT pick) and a synthetic SCL (see :func:`scl_from_blue`)."""
    import rasterio
    from rasterio.enums import Resampling

    source = BORDEAUX / "imgs_1"
    name = "S2A_MSIL2A_20160504T105032_N0400_R051_T30TXQ_20160504T163055.SAFE"
    safe = dest / name
    granule = "L2A_T30TXQ_A004524_20160504T105035"
    img = f"GRANULE/{granule}/IMG_DATA"
    rels = []
    for band in ALL_BANDS:
        if band == "B10":
            continue  # L2A has no cirrus band
        res = RES[band]
        rel = f"{img}/R{res}m/{TILE_DT}_{band}_{res}m"
        _to_jp2(band_file(source, band), safe / f"{rel}.jp2")
        rels.append(rel)
    b05 = band_file(source, "B05")
    with rasterio.open(band_file(source, "B02")) as ds, rasterio.open(b05) as ref20:
        b02_20m = ds.read(1, out_shape=(ref20.height, ref20.width), resampling=Resampling.average)
    rel = f"{img}/R20m/{TILE_DT}_B02_20m"
    _to_jp2(b05, safe / f"{rel}.jp2", b02_20m)
    rels.append(rel)
    rel = f"{img}/R20m/{TILE_DT}_SCL_20m"
    _to_jp2(b05, safe / f"{rel}.jp2", scl_from_blue(b02_20m))
    rels.append(rel)
    (safe / "MTD_MSIL2A.xml").write_text(
        _mtd("L2A", name, granule, rels if with_image_list else None)
    )
    return safe


def zip_safe(safe: Path) -> Path:
    """The SAFE folder zipped as ESA distributes it (the ``.SAFE`` folder at the zip's root)."""
    target = safe.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(safe.rglob("*")):
            zf.write(f, f.relative_to(safe.parent).as_posix())
    return target


def leftovers(folder: Path) -> list[str]:
    """Everything (hidden files included) in ``folder``, or [] when it does not exist."""
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []
