"""The rdf-etl service declaration (light imports only); parameters in :mod:`candela_rdf_etl.params`."""

from __future__ import annotations

from typing import Any

from candela_rdf_etl.params import RdfEtlParams
from candela_sdk.contract import Resources, Service


def _run(params: RdfEtlParams) -> dict[str, Any]:
    from candela_rdf_etl.core import run

    return run(params)


SERVICE = Service(
    name="rdf-etl",
    summary="Map products, change results and context data to RDF and load them into the knowledge base",
    description=(
        "One extractor per source (STAC items of products, a run's change-detection results with "
        "change areas vectorised from the mask, communes, daily weather in the ECA&D, GHCN-Daily "
        "and Météo-France formats). Spatial relations (geo:sfWithin, geo:sfIntersects, nearest "
        "station) are computed here and stored. Every graph passes the SHACL shapes before it "
        "replaces its named graph; a source with bad rows is refused as a whole."
    ),
    params=RdfEtlParams,
    run=_run,
    command="candela-rdf-etl",
    image="candela-rdf-etl",
    resources=Resources(cpu="1", memory="2Gi"),
)
