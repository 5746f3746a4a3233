"""Candela's processing services and workflows as OGC API – Processes, on Airflow's API server.

``app.py`` is the FastAPI app that ``plugins/candela_ogc_plugin.py`` mounts at ``/ogc``;
``ogc.py`` builds the standard's documents; ``airflow_rest.py`` calls Airflow's REST API with
the caller's token; ``openapi.py`` is the OpenAPI 3.0 document.
"""
