"""Candela's processing services and workflows as OGC API – Processes, on Airflow's API server.

``app.py`` is the FastAPI app that ``plugin.py`` (entry point ``airflow.plugins``) mounts at
``/ogc``; ``ogc.py`` builds the standard's documents; ``airflow_rest.py`` calls Airflow's REST API with
the caller's token; ``openapi.py`` is the OpenAPI 3.0 document.
"""
