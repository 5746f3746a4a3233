# syntax=docker/dockerfile:1
# candela-platform: Airflow 3 components (api-server, scheduler, dag-processor, triggerer), the
# Candela CLI (`candela cluster init`), the DAGs, the step operators and the two plugin packages
# (OGC API - Processes at /ogc, the review app at /candela, registered through their
# `airflow.plugins` entry points). No processing libraries: no TensorFlow, no Great
# Expectations, no embedded PostgreSQL or SeaweedFS (the platform's `services` and `embedded`
# extras are left out; tests/test_images.py installs exactly this set and checks it). The
# services' own packages are installed without their dependencies: their declarations (entry
# points `candela.services`, parameter models) are the catalogue the DAGs' commands, the pod
# specs and /ogc are built from; their code runs in their own images (CANDELA_RUNNER=kubernetes).
# rasterio (GDAL in its wheel) stays: the review app's map tiles and the SDK's storage need it.
# The platform is installed editable at /opt/candela, which mirrors the repository (dags/,
# data/, ontology/), so paths relative to the repository hold in the image too.
#
# Built by infra/images.sh as <registry>/candela-platform:<tag>. By hand, from the repository root:
#   docker build -f infra/docker/platform.Dockerfile -t candela-platform .
# An all-in-one image that also runs the steps as subprocesses (CANDELA_RUNNER=local, e.g. the
# docker-compose.yml on one host) adds the services' libraries:
#   docker build -f infra/docker/platform.Dockerfile --build-arg EXTRAS=services -t candela-platform:all .
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13
FROM ${UV_IMAGE} AS uv

# --- build: locked wheels of the platform and its plugins, then the workspace packages
FROM python:3.11-slim AS build
COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /opt/candela
COPY pyproject.toml uv.lock README.md ./
COPY src src
COPY operators operators
COPY images images
COPY plugins plugins
COPY clients clients
COPY ontology ontology
COPY infra/docker/install-platform.sh /usr/local/bin/install-platform
ARG EXTRAS=""
RUN install-platform /opt/candela /opt/venv "$EXTRAS"

# --- runtime: no uv, no compiler, non-root
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 candela \
 && mkdir -p /opt/airflow/plugins \
 && chown -R candela /opt/airflow
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/candela /opt/candela
COPY dags /opt/candela/dags
COPY data/context /opt/candela/data/context
COPY data/weather /opt/candela/data/weather
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/candela/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    CANDELA_HOME=/opt/airflow/candela
USER 10001
WORKDIR /opt/candela
ENTRYPOINT ["airflow"]
