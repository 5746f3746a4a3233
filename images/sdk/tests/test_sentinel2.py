"""The Sentinel-2 band table and the layout readers' parsing."""

from __future__ import annotations

import datetime as dt

import pytest

from candela_sdk.sentinel2 import (
    BAND_NAMES,
    BANDS,
    DEFAULT_BANDS,
    MetadataError,
    band_file_prefix,
    band_files,
    bigearthnet_time,
    finest_images,
    normalise_band,
    parse_oscd_dates,
    resolution,
)


def test_band_table() -> None:
    assert BAND_NAMES[0] == "B01" and BAND_NAMES[8] == "B8A" and len(BAND_NAMES) == 13
    assert [BANDS[b].resolution for b in DEFAULT_BANDS] == [10] * 4 + [20] * 6
    assert BANDS["B04"].common_name == "red" and resolution("B02") == 10
    assert resolution("SCL") is None
    assert normalise_band("b2") == "B02" and normalise_band("b8a") == "B8A"
    with pytest.raises(ValueError, match="unknown Sentinel-2 band"):
        normalise_band("B13")


def test_per_band_files() -> None:
    names = [
        "S2A_OPER_MSI_L1C_TL_B02.tif",
        "S2A_OPER_MSI_L1C_TL_B8A.tif",
        "readme.txt",
        "x_B13.tif",
    ]
    files = band_files(names)
    assert files == {"B02": names[0], "B8A": names[1]}
    assert band_file_prefix(files, "fallback") == "S2A_OPER_MSI_L1C_TL"


def test_oscd_dates_and_bigearthnet_time() -> None:
    dates = parse_oscd_dates("date_1: 20160504\ndate_2 : 20171026\n")
    assert dates == {"date_1": dt.date(2016, 5, 4), "date_2": dt.date(2017, 10, 26)}
    with pytest.raises(MetadataError, match="impossible date"):
        parse_oscd_dates("date_1: 20161304")
    when = bigearthnet_time({"acquisition_date": "2017-06-13 10:10:31"})
    assert when == dt.datetime(2017, 6, 13, 10, 10, 31, tzinfo=dt.UTC)
    with pytest.raises(MetadataError, match="has no acquisition_date"):
        bigearthnet_time({})


def test_finest_images() -> None:
    paths = [
        "GRANULE/L2A_X/IMG_DATA/R20m/T30TXQ_20171026T110131_B02_20m",
        "GRANULE/L2A_X/IMG_DATA/R10m/T30TXQ_20171026T110131_B02_10m",
        "GRANULE/L2A_X/IMG_DATA/R20m/T30TXQ_20171026T110131_SCL_20m",
        "GRANULE/L2A_X/IMG_DATA/R60m/T30TXQ_20171026T110131_SCL_60m",
    ]
    best = finest_images(paths)
    assert best["B02"] == (10, paths[1]) and best["SCL"] == (20, paths[2])
