# syntax=docker/dockerfile:1
# The platform image: Airflow 3 components, the Candela CLI, DAGs and operators, and the two
# plugin packages (OGC API - Processes at /ogc, the review app at /candela, registered through
# their `airflow.plugins` entry points). No processing libraries: no TensorFlow, no Great
# Expectations, no embedded PostgreSQL or SeaweedFS (the `services` and `embedded` extras of the
# platform are left out). The services' own packages are installed without their dependencies:
# their declarations (entry points `candela.services`, parameter models) are the catalogue the
# DAGs' commands, the Kubernetes pod specs and /ogc are built from; their code runs in their own
# images (CANDELA_RUNNER=kubernetes). rasterio (GDAL in its wheel) stays: the review app's map
# tiles (rio-tiler) and the SDK's storage need it.
#
# Build from the repository root:
#   docker build -f infra/docker/platform.Dockerfile -t candela-platform .
# An all-in-one image that also runs the steps as subprocesses (CANDELA_RUNNER=local, e.g. the
# docker-compose.yml on one host) adds the services' libraries:
#   docker build -f infra/docker/platform.Dockerfile --build-arg EXTRAS=services -t candela-platform .

# --- build: locked wheels of the platform and its plugins, then the workspace packages
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
WORKDIR /opt/candela
COPY pyproject.toml uv.lock README.md ./
COPY src src
COPY operators operators
COPY images images
COPY ontology ontology
COPY plugins plugins
ARG EXTRAS=""
RUN uv export --frozen --no-dev --no-emit-workspace --package candela ${EXTRAS:+--extra "$EXTRAS"} \
        -o /tmp/requirements.txt \
 && uv venv /opt/venv \
 && VIRTUAL_ENV=/opt/venv uv pip install --no-cache --compile-bytecode -r /tmp/requirements.txt \
 && VIRTUAL_ENV=/opt/venv uv pip install --no-cache --compile-bytecode --no-deps \
        . ./images/sdk ./plugins/ogc ./plugins/review \
        ./images/search ./images/preprocess ./images/changedetect ./images/mosaic ./images/rdf-etl \
        ./images/fusion ./images/datamining

# --- runtime: no uv, non-root
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 candela \
 && mkdir -p /opt/airflow/plugins \
 && chown -R candela /opt/airflow
COPY --from=build /opt/venv /opt/venv
COPY --chown=candela dags /opt/candela/dags
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/candela/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    CANDELA_HOME=/opt/airflow/candela
USER 10001
WORKDIR /opt/candela
ENTRYPOINT ["airflow"]
