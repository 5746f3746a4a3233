"""Sentinel-2 MSI bands: names, native resolution, wavelengths, MTD ``band_id`` index."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BandInfo:
    name: str
    band_id: int  # index used by the MTD (RADIO_ADD_OFFSET band_id=…)
    resolution: int  # native ground sampling distance, metres
    center_wavelength: float  # micrometres (Sentinel-2A)
    fwhm: float  # micrometres
    common_name: str | None


S2_BANDS: dict[str, BandInfo] = {
    b.name: b
    for b in (
        BandInfo("B01", 0, 60, 0.443, 0.027, "coastal"),
        BandInfo("B02", 1, 10, 0.490, 0.098, "blue"),
        BandInfo("B03", 2, 10, 0.560, 0.045, "green"),
        BandInfo("B04", 3, 10, 0.665, 0.038, "red"),
        BandInfo("B05", 4, 20, 0.705, 0.019, "rededge"),
        BandInfo("B06", 5, 20, 0.740, 0.018, "rededge"),
        BandInfo("B07", 6, 20, 0.783, 0.028, "rededge"),
        BandInfo("B08", 7, 10, 0.842, 0.145, "nir"),
        BandInfo("B8A", 8, 20, 0.865, 0.033, "nir08"),
        BandInfo("B09", 9, 60, 0.945, 0.026, "nir09"),
        BandInfo("B10", 10, 60, 1.375, 0.075, "cirrus"),
        BandInfo("B11", 11, 20, 1.610, 0.143, "swir16"),
        BandInfo("B12", 12, 20, 2.190, 0.242, "swir22"),
    )
}

#: The 10 m and 20 m bands, in the order of the output stack (10 m first, then 20 m).
DEFAULT_BANDS: tuple[str, ...] = (
    "B02",
    "B03",
    "B04",
    "B08",
    "B05",
    "B06",
    "B07",
    "B8A",
    "B11",
    "B12",
)

#: The reference grid of every output: the blue band, 10 m.
REFERENCE_BAND = "B02"


def normalise_band(name: str) -> str:
    """``b2``/``B2``/``b02`` → ``B02``; ``b8a`` → ``B8A``; raises ValueError for unknown names."""
    text = name.strip().upper()
    if text.startswith("B") and text[1:].isdigit() and len(text) == 2:
        text = "B0" + text[1:]
    if text not in S2_BANDS:
        raise ValueError(f"unknown Sentinel-2 band {name!r} (known: {', '.join(sorted(S2_BANDS))})")
    return text
