"""The typed run configuration of each workflow: one pydantic model per DAG.

Each model is the one home of its workflow's parameters: the DAG's Airflow ``Params`` (and so
the JSON Schema the Airflow UI, the REST API and the OGC API publish) are generated from it
(:func:`dag_params`), and everything that starts a run builds its configuration through it —
the demo, the triggers, the watches, the orders, ``candela run``, the OGC API — instead of
writing a dict by hand. Unknown keys are refused; the rules JSON Schema can carry (ranges,
patterns, formats) are in the schema; cross-field rules (west < east, south < north,
start <= end) and the model name (:mod:`candela_sdk.registry`) are checked by the model, which
the DAG's first task runs over its params so that what Airflow's schema check cannot see fails
there, at once and without retry.

Light on purpose: the DAG files import this module at top level (pydantic and the SDK's\nmodel-name rule only).
"""

from __future__ import annotations

import datetime as dt
import re
from importlib.metadata import entry_points
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from candela_sdk.registry import BUILTIN_NAMES, check_model_name
from candela_sdk.registry import NAME_PATTERN as MODEL_NAME_PATTERN

TILE_PATTERN = r"^T[0-9]{2}[A-Z]{3}$"
THRESHOLD_PATTERN = r"^(auto|0?\.[0-9]+)$"


def _number(minimum: float | None = None, maximum: float | None = None) -> tuple[Any, Any]:
    """Validation and JSON Schema of a number within bounds, kept as given (an int stays an
    int: the output key hashes the configuration as it was sent), published as
    ``{"type": "number", minimum…}``."""
    schema: dict[str, Any] = {"type": "number"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum

    def check(value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{value!r} is not a number")
        if minimum is not None and value < minimum:
            raise ValueError(f"{value} is less than the minimum of {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"{value} is greater than the maximum of {maximum}")
        return value

    return PlainValidator(check, json_schema_input_type=float), WithJsonSchema(schema)


_LONGITUDE = _number(-180, 180)
_PERCENT = _number(0, 100)
_AT_LEAST_1 = _number(1)
Longitude = Annotated[Any, _LONGITUDE[0], _LONGITUDE[1]]
MaxCloud = Annotated[Any, _PERCENT[0], _PERCENT[1]]
TileSize = Annotated[Any, _AT_LEAST_1[0], _AT_LEAST_1[1]]


def _threshold(value: Any) -> str | float:
    if isinstance(value, str):
        if value == "auto":
            return value
        if not re.match(THRESHOLD_PATTERN, value):
            raise ValueError(f"{value!r} is not 'auto' or a number such as 0.35")
        number = float(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(f"{value!r} is not 'auto' or a number")
    if not 0.0 < number < 1.0:
        raise ValueError(f"{value!r} is not a change probability strictly between 0 and 1")
    return value


Threshold = Annotated[
    Any,
    PlainValidator(_threshold, json_schema_input_type=str | float),
    WithJsonSchema(
        {
            "type": ["string", "number"],
            "pattern": THRESHOLD_PATTERN,
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
        }
    ),
]


class RunConf(BaseModel):
    """Base of the run configurations: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @classmethod
    def checked(cls, data: dict[str, Any]) -> Self:
        """The typed configuration of ``data``; :class:`BadRunConf` naming the field(s)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            title = cls.model_config.get("title") or cls.__name__
            raise BadRunConf(f"bad parameters for {title}: {describe_error(exc)}") from None

    def conf(self) -> dict[str, Any]:
        """The DAG run's ``conf`` (JSON): the fields that were given, defaults left to the DAG."""
        return self.model_dump(mode="json", exclude_unset=True)


class ChangeDetectionConf(RunConf):
    """Parameters of ``s2_change_detection``: an area, a period, and how to compare it."""

    model_config = ConfigDict(extra="forbid", validate_default=True, title="s2_change_detection")

    collection: Literal["sentinel-2-l1c", "sentinel-2-l2a"] = Field(
        "sentinel-2-l1c", title="Collection", description="Sentinel-2 collection to search"
    )
    bbox: Annotated[list[Longitude], Field(min_length=4, max_length=4)] | None = Field(
        [-0.68, 44.83, -0.56, 44.93],
        title="Bounding box",
        description="area of interest as [west, south, east, north] in degrees (WGS 84)",
    )
    aoi: dict[str, Any] | None = Field(
        None,
        title="Area of interest",
        description="area of interest as GeoJSON: a geometry, Feature or FeatureCollection "
        "(overrides bbox)",
    )
    start: dt.date = Field(dt.date(2016, 1, 1), title="Start", description="first day")
    end: dt.date = Field(dt.date(2017, 12, 31), title="End", description="last day")
    max_cloud: MaxCloud = Field(
        100, title="Maximum cloud cover", description="maximum cloud cover, %"
    )
    tile: Annotated[str, Field(pattern=TILE_PATTERN)] | None = Field(
        None, title="Tile", description="MGRS tile, e.g. T30TXQ"
    )
    tile_size_km: TileSize = Field(
        50,
        title="Piece size (km)",
        description="a larger AOI is cut into pieces of at most this size, processed in parallel",
    )
    model: str = Field(
        "encoder",
        title="Change model",
        pattern=MODEL_NAME_PATTERN,
        examples=list(BUILTIN_NAMES),
        description="change detection model: cva, irmad, encoder or a registered model "
        "(candela models list)",
    )
    zones: str | None = Field(
        None,
        title="Zones",
        description="GeoJSON of zones (parcels, communes; a path or URI): changed share per zone",
    )
    threshold: Threshold = Field(
        "auto",
        title="Threshold",
        description="'auto' or a change-probability threshold in ]0, 1[",
    )

    @field_validator("bbox")
    @classmethod
    def _bbox(cls, v: list[float] | None) -> list[float] | None:
        from candela_sdk.aoi import check_bbox  # the one rule for an area of interest

        return None if v is None else check_bbox(v)

    @field_validator("aoi")
    @classmethod
    def _aoi(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        from candela_sdk.aoi import parse_geojson

        if v:
            parse_geojson(v)
        # {} is no AOI (as in the pipeline; Airflow's trigger form sends it): one value for
        # "none", so that a run with it has the output key of a run without
        return v or None

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return check_model_name(v)  # the one rule for a model name

    @field_validator("end")
    @classmethod
    def _period(cls, v: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("start")
        if start is not None and start > v:
            raise ValueError(f"end ({v}) is before start ({start})")
        return v


def _service_names() -> list[str]:
    # entry-point names only (= service names): nothing of the services is imported
    return sorted({ep.name for ep in entry_points(group="candela.services")})


def _service_schema(schema: dict[str, Any]) -> None:
    schema["enum"] = _service_names() or ["search"]


class RunServiceConf(RunConf):
    """Parameters of ``run_service``: one processing service and its arguments."""

    model_config = ConfigDict(extra="forbid", validate_default=True, title="run_service")

    service: str = Field(
        (_service_names() or ["search"])[0],
        title="Service",
        description="processing service (see `candela services`)",
        json_schema_extra=_service_schema,
    )
    arguments: dict[str, Any] = Field(
        {},
        title="Arguments",
        description="the service's parameters (its JSON Schema)",
    )

    @field_validator("service")
    @classmethod
    def _service(cls, v: str) -> str:
        from candela.services import UnknownService, get_service

        try:
            get_service(v)
        except UnknownService as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("arguments")
    @classmethod
    def _arguments(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from candela.services import get_service

        if "service" not in info.data:
            return v  # the service is refused already
        try:
            get_service(info.data["service"]).params.model_validate(v)
        except ValidationError as exc:
            raise ValueError(describe_error(exc)) from None
        return v


class MinePatchesConf(RunConf):
    """Parameters of ``mine_patches``: which stacks to cut into patches, and how. Started by the
    change-detection pipeline's results (asset event: the stacks of that run) or on demand
    (``stacks`` or ``source_run_id``)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, title="mine_patches")

    stacks: list[str] = Field(
        [], title="Stacks", description="URIs of preprocessed stacks (COGs) to mine"
    )
    source_run_id: str | None = Field(
        None,
        title="Source run",
        description="mine the stacks of this run of source_dag_id (its run.json)",
    )
    source_dag_id: str = Field(
        "s2_change_detection", title="Source workflow", pattern=r"^[A-Za-z0-9_.-]{1,250}$"
    )
    size: int = Field(64, ge=8, le=2048, title="Patch size (px)")
    stride: int | None = Field(None, ge=1, le=2048, title="Stride (px; default: the size)")
    min_valid: float = Field(0.5, ge=0, le=1, title="Smallest valid share of a patch")
    dataset: str = Field("sentinel-2", title="Dataset", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    encoder: str | None = Field(
        None,
        title="Encoder",
        pattern=MODEL_NAME_PATTERN,
        description="registered change-detection encoder whose embedding is stored",
    )


WORKFLOWS: dict[str, type[RunConf]] = {
    "s2_change_detection": ChangeDetectionConf,
    "run_service": RunServiceConf,
    "mine_patches": MinePatchesConf,
}


def _flatten(prop: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {"type": "null"}]`` → X with ``type: [t, "null"]`` (the shape Airflow's
    trigger form and the OGC descriptions understand)."""
    options = prop.get("anyOf")
    if not options:
        return prop
    rest = {k: v for k, v in prop.items() if k != "anyOf"}
    non_null = [o for o in options if o != {"type": "null"}]
    if len(non_null) == 1 and len(non_null) < len(options) and isinstance(non_null[0], dict):
        inner = dict(non_null[0])
        t = inner.get("type")
        types = t if isinstance(t, list) else [t]
        inner["type"] = [*types, "null"]
        return {**inner, **rest}
    return prop


def param_schemas(model: type[RunConf]) -> dict[str, dict[str, Any]]:
    """Per field: the JSON Schema of the DAG Param (``default`` included)."""
    schema = model.model_json_schema()
    out = {name: _flatten(dict(prop)) for name, prop in schema["properties"].items()}
    for prop in out.values():
        types = prop.get("type")
        if prop.get("default") is None and isinstance(types, list) and "object" in types:
            # Airflow's trigger form shows an object field without a value as `{}` but sends
            # null: a `{}` default makes it send what it shows (the models read {} as none)
            prop["default"] = {}
    return out


def dag_params(model: type[RunConf], param: Any) -> dict[str, Any]:
    """The DAG's ``params``: one ``param(default, **schema)`` (Airflow's ``Param``) per field."""
    out = {}
    for name, schema in param_schemas(model).items():
        schema = dict(schema)
        default = schema.pop("default", None)
        out[name] = param(default, **schema)
    return out


class BadRunConf(ValueError):
    """A run configuration its workflow refuses: one line naming the field(s)."""


def describe_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(conf)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown parameter"
        parts.append(f"{field}: {msg}")
    return "; ".join(parts)


def validate_conf(dag_id: str, conf: dict[str, Any]) -> RunConf | None:
    """The typed configuration of ``conf`` for ``dag_id`` (None for a workflow without one);
    :class:`BadRunConf` naming the field when the workflow refuses it."""
    model = WORKFLOWS.get(dag_id)
    return None if model is None else model.checked(conf)
