"""Parameters of the ``rdf-etl`` service (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from candela_sdk.contract import ServiceParams

SOURCES = (
    "products",
    "results",
    "communes",
    "weather-ecad",
    "weather-ghcn",
    "weather-meteofrance",
    "landcover-run",
    "corine",
    "rpg",
    "bigearthnet",
)
Source = Literal[
    "products",
    "results",
    "communes",
    "weather-ecad",
    "weather-ghcn",
    "weather-meteofrance",
    "landcover-run",
    "corine",
    "rpg",
    "bigearthnet",
]


class RdfEtlParams(ServiceParams):
    source: Source = Field(
        description="what the inputs are: products (STAC items), results (change-detection STAC "
        "items of one run), communes (GeoJSON/GeoPackage with code + nom), weather-ecad (ECA&D "
        "daily series), weather-ghcn (GHCN-Daily CSV), weather-meteofrance (Météo-France daily CSV), "
        "landcover-run (the land-cover STAC items of one run), corine (CORINE Land Cover "
        "GeoPackage/GeoJSON with code_18, or GeoTIFF), rpg (RPG parcels, GeoPackage/GeoJSON), "
        "bigearthnet (BigEarthNet S2 patch folders or their *_labels_metadata.json)"
    )
    inputs: list[str] = Field(description="URIs of the source files", min_length=1)
    key: str | None = Field(
        None,
        description="name of the source's named graph (default: the first input's file name; "
        "for results the output key of the run); a rerun with the same key replaces the graph",
    )
    stations: str | None = Field(
        None,
        description="station list for weather-ecad (stations.txt; default: beside the input) "
        "and weather-ghcn (ghcnd-stations.txt, required)",
    )
    start: str | None = Field(None, description="weather: first day kept (YYYY-MM-DD)")
    end: str | None = Field(None, description="weather: last day kept (YYYY-MM-DD)")
    workflow: str | None = Field(None, description="results, landcover-run: the workflow (DAG id)")
    run_id: str | None = Field(None, description="results, landcover-run: the workflow run id")
    output_key: str | None = Field(None, description="results, landcover-run: the run's output key")
    min_pixels: int = Field(
        1,
        ge=1,
        description="results: smallest change area kept, in pixels (8-connected); "
        "landcover-run: smallest class area kept (4-connected)",
    )
    output: str | None = Field(None, description="also write the graph as N-Triples to this URI")
    load: bool = Field(True, description="load the graph into the knowledge base")

    @model_validator(mode="after")
    def _run_fields(self) -> RdfEtlParams:
        if self.source in ("results", "landcover-run") and not (
            self.workflow and self.run_id and self.output_key
        ):
            raise ValueError(f"source {self.source} needs --workflow, --run-id and --output-key")
        return self
