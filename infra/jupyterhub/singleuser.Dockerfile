# syntax=docker/dockerfile:1
# The JupyterHub single-user image: JupyterLab (Jupyter Docker Stacks, non-root user jovyan) with
# the Candela SDK (candela-client, with xarray/rioxarray) at the versions of uv.lock, and the
# example notebooks in /opt/candela/notebooks (copied to ~/examples at each start by the
# postStart hook of infra/jupyterhub/values.yaml). Nothing of the platform, Airflow or
# TensorFlow: the notebooks talk to the platform over HTTP and read rasters from S3.
#
# Build from the repository root:
#   docker build -f infra/jupyterhub/singleuser.Dockerfile -t REGISTRY/candela-notebook:TAG .

# --- the SDK's locked requirements, exported from the workspace's uv.lock
FROM python:3.11-slim AS lock
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY images images
COPY plugins plugins
COPY clients clients
RUN uv export --frozen --no-dev --no-emit-workspace --package candela-client --extra xarray \
        --no-hashes -o /tmp/requirements.txt \
    && uv build --wheel --package candela-client --out-dir /tmp/wheels

# --- JupyterLab + the SDK
FROM quay.io/jupyter/minimal-notebook:python-3.11
COPY --from=lock /tmp/requirements.txt /tmp/candela-requirements.txt
COPY --from=lock /tmp/wheels /tmp/wheels
RUN pip install --no-cache-dir -r /tmp/candela-requirements.txt \
    && pip install --no-cache-dir --no-deps /tmp/wheels/candela_client-*.whl \
    && rm -rf /tmp/wheels /tmp/candela-requirements.txt \
    && python -c "import candela_client, rioxarray"
COPY --chown=1000:100 notebooks /opt/candela/notebooks
# jovyan: NB_UID 1000, group users (100) in Jupyter Docker Stacks
USER 1000
