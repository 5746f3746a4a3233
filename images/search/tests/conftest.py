"""Fixtures of the search service's tests.

No real Sentinel-2 SAFE product is available offline (a product is ~600 MB–1 GB), so the SAFE
fixtures below write *metadata only*: an ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` modelled on the
documented Sentinel-2 product format (PSD-14 user product metadata: ``General_Info/Product_Info``
with ``Datatake``, ``Product_Organisation``, ``Product_Image_Characteristics`` with quantification
values and, from processing baseline 04.00 on, the radiometric add offsets;
``Geometric_Info/Product_Footprint``; ``Quality_Indicators_Info``). The spectral response curves,
GIPP lists and most quality checks of the real files are left out; names, identifiers and values
are invented but follow the real patterns. Band files are not written (recognition reads the
metadata only).
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIGEARTHNET = REPO / "data" / "bigearthnet"

L1C_NS = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd"
L2A_NS = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"

BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
RES = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10}
RES |= {"B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
CENTRAL = [442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5, 1613.7]
CENTRAL += [2202.4]
SOLAR = [1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32]
SOLAR += [812.92, 367.15, 245.59, 85.25]

# T30TXQ (Bordeaux) as the four corners of a full tile, lat lon order as in EXT_POS_LIST
T30TXQ_FULL = [
    (45.146, -1.735),
    (45.124, -0.339),
    (44.136, -0.373),
    (44.157, -1.747),
    (45.146, -1.735),
]
# the same tile at the edge of the swath: only the north-eastern triangle has data
T30TXQ_PARTIAL = [(45.124, -0.339), (44.136, -0.373), (45.140, -1.200), (45.124, -0.339)]
# T30TYQ, the tile east of it
T30TYQ_FULL = [
    (45.124, -0.462),
    (45.079, 0.933),
    (44.092, 0.879),
    (44.136, -0.496),
    (45.124, -0.462),
]


def _pos_list(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{lat} {lon}" for lat, lon in points) + " "


def mtd_xml(
    *,
    level: str,
    product_uri: str,
    start: dt.datetime,
    generation: dt.datetime,
    baseline: str,
    datatake_id: str,
    spacecraft: str,
    relative_orbit: int,
    footprint: list[tuple[float, float]],
    cloud: float,
    tile: str,
    absolute_orbit: int,
) -> str:
    """An MTD_MSIL1C.xml / MTD_MSIL2A.xml document (see the module docstring)."""
    l2a = level == "L2A"
    ns = L2A_NS if l2a else L1C_NS
    root = "Level-2A_User_Product" if l2a else "Level-1C_User_Product"
    stamp = start.strftime("%Y%m%dT%H%M%S")
    gran = (
        f"{'L2A' if l2a else 'L1C'}_{tile}_A{absolute_orbit:06d}_"
        f"{(start + dt.timedelta(minutes=6)).strftime('%Y%m%dT%H%M%S')}"
    )
    files = []
    if l2a:
        for res, bands in (
            (10, ["B02", "B03", "B04", "B08", "TCI", "AOT", "WVP"]),
            (20, ["B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12", "SCL"]),
            (60, ["B01", "B02", "B09", "B11", "B12", "SCL"]),
        ):
            for b in bands:
                files.append(f"GRANULE/{gran}/IMG_DATA/R{res}m/{tile}_{stamp}_{b}_{res}m")
    else:
        for b in [*BANDS, "TCI"]:
            files.append(f"GRANULE/{gran}/IMG_DATA/{tile}_{stamp}_{b}")
    image_files = "\n".join(f"            <IMAGE_FILE>{f}</IMAGE_FILE>" for f in files)
    gen = generation.strftime("%Y%m%dT%H%M%S")
    ds_id = f"S2{spacecraft[-1]}_OPER_MSI_{'L2A' if l2a else 'L1C'}_DS_2APS_{gen}"
    new_format = tuple(int(x) for x in baseline.split(".")) >= (4, 0)
    if l2a:
        quant = """      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>"""
        offsets = (
            "      <BOA_ADD_OFFSET_VALUES_LIST>\n"
            + "\n".join(
                f'        <BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13)
            )
            + "\n      </BOA_ADD_OFFSET_VALUES_LIST>"
        )
    else:
        quant = '      <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        offsets = (
            "      <Radiometric_Offset_List>\n"
            + "\n".join(
                f'        <RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>'
                for i in range(13)
            )
            + "\n      </Radiometric_Offset_List>"
        )
    if not new_format:
        offsets = ""
    spectral = "\n".join(
        f'        <Spectral_Information bandId="{i}" physicalBand="{b if b == "B8A" else "B" + str(int(b[1:]))}">\n'
        f"          <RESOLUTION>{RES[b]}</RESOLUTION>\n"
        f'          <Wavelength><CENTRAL unit="nm">{CENTRAL[i]}</CENTRAL></Wavelength>\n'
        f"        </Spectral_Information>"
        for i, b in enumerate(BANDS)
    )
    solar = "\n".join(
        f'          <SOLAR_IRRADIANCE bandId="{i}" unit="W/m²/µm">{v}</SOLAR_IRRADIANCE>'
        for i, v in enumerate(SOLAR)
    )
    start_text = start.strftime("%Y-%m-%dT%H:%M:%S.024Z")
    scl = ""
    if l2a:
        scl = """      <Scene_Classification_List>
        <Scene_Classification_ID>
          <SCENE_CLASSIFICATION_TEXT>SC_NODATA</SCENE_CLASSIFICATION_TEXT>
          <SCENE_CLASSIFICATION_INDEX>0</SCENE_CLASSIFICATION_INDEX>
        </Scene_Classification_ID>
        <Scene_Classification_ID>
          <SCENE_CLASSIFICATION_TEXT>SC_CLOUD_HIGH_PROBA</SCENE_CLASSIFICATION_TEXT>
          <SCENE_CLASSIFICATION_INDEX>9</SCENE_CLASSIFICATION_INDEX>
        </Scene_Classification_ID>
      </Scene_Classification_List>"""
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{root} xmlns:n1="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="{ns}">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{start_text}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{start_text}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{product_uri}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>{"Level-2A" if l2a else "Level-1C"}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>{"S2MSI2A" if l2a else "S2MSI1C"}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <PRODUCT_DOI>https://doi.org/10.5270/S2_-{"znk9xsj" if l2a else "742ikth"}</PRODUCT_DOI>
      <GENERATION_TIME>{generation.strftime("%Y-%m-%dT%H:%M:%S.000000Z")}</GENERATION_TIME>
      <PREVIEW_IMAGE_URL>Not applicable</PREVIEW_IMAGE_URL>
      <PREVIEW_GEO_INFO>Not applicable</PREVIEW_GEO_INFO>
      <Datatake datatakeIdentifier="{datatake_id}">
        <SPACECRAFT_NAME>{spacecraft}</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>{start_text}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>{relative_orbit}</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true">
        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="{ds_id}_S{stamp}_N{baseline}" granuleIdentifier="{ds_id.replace("_DS_", "_TL_")}_A{absolute_orbit:06d}_{tile}_N{baseline}" imageFormat="JPEG2000">
{image_files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Image_Display_Order>
        <RED_CHANNEL>3</RED_CHANNEL>
        <GREEN_CHANNEL>2</GREEN_CHANNEL>
        <BLUE_CHANNEL>1</BLUE_CHANNEL>
      </Image_Display_Order>
{quant}
{offsets}
      <Reflectance_Conversion>
        <U>0.99622</U>
        <Solar_Irradiance_List>
{solar}
        </Solar_Irradiance_List>
      </Reflectance_Conversion>
      <Spectral_Information_List>
{spectral}
      </Spectral_Information_List>
{scl}
    </Product_Image_Characteristics>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Product_Footprint>
      <Product_Footprint>
        <Global_Footprint>
          <EXT_POS_LIST>{_pos_list(footprint)}</EXT_POS_LIST>
        </Global_Footprint>
      </Product_Footprint>
      <RASTER_CS_TYPE>POINT</RASTER_CS_TYPE>
      <PIXEL_ORIGIN>1</PIXEL_ORIGIN>
    </Product_Footprint>
    <Coordinate_Reference_System>
      <GEO_TABLES version="1">EPSG</GEO_TABLES>
      <HORIZONTAL_CS_TYPE>GEOGRAPHIC</HORIZONTAL_CS_TYPE>
    </Coordinate_Reference_System>
  </n1:Geometric_Info>
  <n1:Auxiliary_Data_Info>
    <PRODUCTION_DEM_TYPE>COPERNICUS</PRODUCTION_DEM_TYPE>
    <IERS_BULLETIN_FILENAME>None</IERS_BULLETIN_FILENAME>
  </n1:Auxiliary_Data_Info>
  <n1:Quality_Indicators_Info>
    <Cloud_Coverage_Assessment>{cloud}</Cloud_Coverage_Assessment>
    <Technical_Quality_Assessment>
      <DEGRADED_ANC_DATA_PERCENTAGE>0.0</DEGRADED_ANC_DATA_PERCENTAGE>
      <DEGRADED_MSI_DATA_PERCENTAGE>0</DEGRADED_MSI_DATA_PERCENTAGE>
    </Technical_Quality_Assessment>
    <Quality_Control_Checks>
      <Quality_Inspections>
        <quality_check checkType="FORMAT_CORRECTNESS">PASSED</quality_check>
        <quality_check checkType="GEOMETRIC_QUALITY">PASSED</quality_check>
      </Quality_Inspections>
      <Failed_Inspections/>
    </Quality_Control_Checks>
  </n1:Quality_Indicators_Info>
</n1:{root}>
"""


SafeFactory = Callable[..., Path]


@pytest.fixture
def make_safe(tmp_path: Path) -> SafeFactory:
    """Write a SAFE folder (metadata only) or its .zip; returns its path.

    ``make_safe(level="L1C", start=…, baseline="02.07", tile="T30TXQ", footprint=[…], cloud=…,
    spacecraft="Sentinel-2A", zipped=False, folder=tmp_path)``.
    """

    def make(
        *,
        level: str = "L2A",
        start: dt.datetime = dt.datetime(2018, 8, 15, 10, 56, 19),
        baseline: str = "02.08",
        generation: dt.datetime | None = None,
        tile: str = "T30TXQ",
        footprint: list[tuple[float, float]] | None = None,
        cloud: float = 12.5,
        spacecraft: str = "Sentinel-2B",
        relative_orbit: int = 94,
        absolute_orbit: int = 7564,
        zipped: bool = False,
        folder: Path | None = None,
    ) -> Path:
        generation = generation or start + dt.timedelta(hours=2, minutes=48)
        sat = "S2" + spacecraft[-1].upper()
        uri = (
            f"{sat}_MSI{level}_{start:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}_"
            f"R{relative_orbit:03d}_{tile}_{generation:%Y%m%dT%H%M%S}"
        )
        xml = mtd_xml(
            level=level,
            product_uri=uri,
            start=start,
            generation=generation,
            baseline=baseline,
            datatake_id=f"G{sat}_{start:%Y%m%dT%H%M%S}_{absolute_orbit:06d}_N{baseline}",
            spacecraft=spacecraft,
            relative_orbit=relative_orbit,
            footprint=footprint or T30TXQ_FULL,
            cloud=cloud,
            tile=tile,
            absolute_orbit=absolute_orbit,
        )
        where = folder or tmp_path
        name = f"MTD_MSI{level}.xml"
        if zipped:
            path = where / f"{uri}.zip"
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr(f"{uri}.SAFE/{name}", xml)
                zf.writestr(f"{uri}.SAFE/manifest.safe", "<xfdu:XFDU/>")
            return path
        safe = where / f"{uri}.SAFE"
        safe.mkdir(parents=True)
        (safe / name).write_text(xml, encoding="utf-8")
        (safe / "GRANULE").mkdir()
        return safe

    return make


@pytest.fixture
def footprints() -> dict[str, list[tuple[float, float]]]:
    """EXT_POS_LIST footprints (lat, lon) for the SAFE fixtures."""
    return {"T30TXQ": T30TXQ_FULL, "T30TXQ-partial": T30TXQ_PARTIAL, "T30TYQ": T30TYQ_FULL}
