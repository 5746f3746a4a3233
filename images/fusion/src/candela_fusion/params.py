"""Parameters of the fusion services (pydantic only: the platform imports this module)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from candela_sdk.contract import ServiceParams

MODEL_HELP = (
    "s2 (optical only), s1 (radar only), fused (both; radar where the optical pixel is "
    "invalid) or the name of a fusion model registered with `candela-fusion train --register`"
)


class ClassifyParams(ServiceParams):
    """Parameters of ``candela-fusion classify`` (the pipeline's ``fuse_landcover`` step)."""

    optical: str = Field(
        description="URI of the Sentinel-2 stack (COG from preprocessing, band descriptions "
        "B02…B12; or a Sen1Floods11/SEN12MS-CR S2 GeoTIFF); its grid is the output grid"
    )
    radar: str = Field(
        description="URI of the Sentinel-1 backscatter: a two-band VV/VH GeoTIFF (dB or "
        "linear, detected) or a BigEarthNet S1 patch folder; resampled onto --optical's grid"
    )
    output: str = Field(description="URI of the output folder")
    model: str = Field("fused", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description=MODEL_HELP)
    optical_mask: str | None = Field(
        None, description="URI of a raster on --optical's grid marking optical pixels"
    )
    optical_mask_kind: Literal["valid", "scl", "cloud"] = Field(
        "valid",
        description="what --optical-mask holds: valid (non-zero = usable, the preprocess "
        "mask), scl (L2A scene classification; 4, 5, 6, 7, 11 usable) or cloud (non-zero = cloud)",
    )
    classes: str | None = Field(
        None,
        description="class table the result must use (ben19, water or a JSON file URI): "
        "refused when it does not match the model's",
    )
    optical_datetime: str | None = Field(
        None, description="acquisition time of --optical (default: its ACQUISITION_DATETIME tag)"
    )
    radar_datetime: str | None = Field(
        None, description="acquisition time of --radar (default: from its metadata or tags)"
    )
    window_days: float = Field(
        10.0, gt=0, le=60, description="largest time between the S1 and S2 acquisitions"
    )
    speckle: int | None = Field(
        None, ge=3, le=15, description="Lee speckle filter window (odd); default none"
    )
    zones: str | None = Field(
        None, description="zones GeoJSON/GeoPackage: class areas per zone (default 1 km cells)"
    )
    tile: int = Field(512, ge=64, le=8192, description="inference tile size (pixels)")


class TrainParams(ServiceParams):
    """Parameters of ``candela-fusion train``."""

    data: str = Field(
        description="patch store folder (meta.json, optical.npy, radar.npy, labels.npy "
        "[, valid.npy]), or a Sen1Floods11 chip folder (cut into 64x64 patches)"
    )
    model: Literal["s2", "s1", "fused"] = Field("fused", description="network to train")
    classes: str = Field("water", description="class table: ben19, water or JSON")
    clouds: str | None = Field(
        None,
        description="SEN12MS-CR folder whose cloudy scene gives the real cloud shapes of the "
        "fused network's optical dropout",
    )
    epochs: int = Field(6, ge=1, le=1000)
    batch: int = Field(8, ge=1, le=1024)
    width: int = Field(16, ge=4, le=256, description="filters per convolution")
    seed: int = Field(0)
    output: str = Field(description="local folder for model.keras + metadata.json")
    register_as: str | None = Field(None, description="also register the model under this name")


class EvaluateParams(ServiceParams):
    """Parameters of ``candela-fusion evaluate``."""

    floods: str | None = Field(None, description="Sen1Floods11 chip folder (pixel test)")
    clouds: str | None = Field(None, description="SEN12MS-CR folder (real cloud shapes)")
    bigearthnet_v1: str | None = Field(
        None, description="folder of BigEarthNet v1 S1+S2 patch folders (patch test)"
    )
    bigearthnet_v2: str | None = Field(
        None, description="folder with decoded_pairs.npz + decoded_pairs_labels.json"
    )
    epochs: int = Field(6, ge=1, le=200, description="pixel test: epochs per fold")
    patch_epochs: int = Field(30, ge=1, le=500, description="patch test: epochs per fold")
    width: int = Field(16, ge=4, le=128)
    seed: int = Field(0)
    output: str | None = Field(None, description="URI of the JSON report (+ .md beside it)")
