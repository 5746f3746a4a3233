"""Parameters of the change detection services (pydantic and the model-name rule only)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from candela_sdk.contract import ServiceParams
from candela_sdk.registry import BUILTIN_NAMES, builtin_names, check_model_name
from candela_sdk.registry import NAME_PATTERN as MODEL_NAME_PATTERN

THRESHOLD_HELP = (
    "'auto' (the model's calibrated cut: probability 0.5 for every built-in model) or a change-probability "
    "threshold strictly between 0 and 1; pixels with probability >= threshold are change"
)


def parse_threshold(v: str) -> str:
    """'auto' or a probability strictly between 0 and 1 (as text)."""
    text = str(v).strip().lower()
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{v!r} is not 'auto' or a number") from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"{v!r} is not a probability strictly between 0 and 1")
    return repr(value)


class DetectParams(ServiceParams):
    """Parameters of ``candela-changedetect detect``."""

    before: str = Field(description="URI of the earlier stack (multi-band COG from preprocessing)")
    after: str = Field(description="URI of the later stack, same bands and grid as --before")
    model: str = Field(
        "cva",
        description="change model: "
        + ", ".join(builtin_names())
        + " or the name of a model in the model registry (candela models list)",
        pattern=MODEL_NAME_PATTERN,
        examples=list(BUILTIN_NAMES),
    )
    output: str = Field(description="URI of the output folder")
    threshold: str = Field("auto", description=THRESHOLD_HELP)
    before_mask: str | None = Field(
        None, description="URI of a validity mask for --before (0 = invalid), same grid"
    )
    after_mask: str | None = Field(
        None, description="URI of a validity mask for --after (0 = invalid), same grid"
    )
    zones: str | None = Field(
        None,
        description="zones (parcels, communes) as GeoJSON or GeoPackage: changed share per zone",
    )
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="model-specific options as JSON (see the README)"
    )
    block_rows: int = Field(
        512, ge=1, le=65536, description="rows per processing block (bounds memory)"
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        return check_model_name(v)  # the one rule (candela_sdk.registry)

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: str) -> str:
        return parse_threshold(v)


class EvaluateParams(ServiceParams):
    """Parameters of ``candela-changedetect evaluate``.

    Two modes: ``--prediction MASK --labels LABELS.tif`` scores one change mask;
    ``--labels DIR`` (a labelled dataset in the OSCD layout) runs every ``--models`` on every
    city and writes the metrics per city and averaged, side by side.
    """

    labels: str = Field(
        description="URI of a label raster on the prediction's grid (or same shape), or a "
        "local dataset folder in the OSCD layout (<city>/imgs_1, imgs_2, cm/<city>-cm.tif)"
    )
    prediction: str | None = Field(
        None, description="URI of a change_mask.tif (1 change, 0 no change, 255 nodata)"
    )
    label_change_value: int = Field(2, description="label value meaning change")
    label_nochange_value: int = Field(1, description="label value meaning no change")
    output: str | None = Field(None, description="URI of a metrics JSON file to write")
    cities: str | None = Field(
        None, description="dataset mode: comma-separated cities (default: every labelled city)"
    )
    tuning: str | None = Field(
        None,
        description="dataset mode: cities used to tune models, shown but left out of the "
        "reported mean",
    )
    models: str = Field(
        "cva,irmad,encoder", description="dataset mode: comma-separated models to compare"
    )
    model_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='dataset mode: options per model as JSON, e.g. {"encoder": {"seed": 1}}',
    )
    threshold: str = Field("auto", description="dataset mode: " + THRESHOLD_HELP)
    protocol: Literal["fixed", "loo"] = Field(
        "fixed",
        description="dataset mode: fixed (each model with its options, --tuning cities apart) "
        "or loo (leave-one-city-out: the cut rule and the --grid settings chosen on the other "
        "cities, scored on the held-out one)",
    )
    grid: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description="loo: settings per model compared (each needs its own run), e.g. "
        '{"encoder": [{}, {"epochs": 8}], "irmad": [{"ridge": 0.01}, {"ridge": 0.1}]}',
    )
    seeds: str = Field("0", description="loo: comma-separated seeds of models with a seed")
    cache: str | None = Field(
        None, description="loo: local folder keeping the stacks and score maps between runs"
    )

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: str) -> str:
        return parse_threshold(v)
