# The platform image: Airflow 3 components + Candela CLI, DAGs and operators (no heavy processing
# libraries beyond what the catalogue needs). Build from the repository root:
#   docker build -f infra/docker/platform.Dockerfile -t candela-platform .
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
WORKDIR /opt/candela
COPY pyproject.toml uv.lock README.md ./
COPY src src
COPY operators operators
COPY images images
RUN uv sync --all-packages --frozen --no-dev --compile-bytecode

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 candela
COPY --from=build --chown=candela /opt/candela /opt/candela
COPY --chown=candela dags /opt/candela/dags
ENV PATH=/opt/candela/.venv/bin:$PATH AIRFLOW_HOME=/opt/airflow CANDELA_HOME=/opt/airflow/candela
RUN mkdir -p /opt/airflow && chown candela /opt/airflow
USER candela
WORKDIR /opt/candela
ENTRYPOINT ["airflow"]
