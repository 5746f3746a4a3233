"""Airflow operators of Candela: one step operator, two runners.

A pipeline step names a processing service and its arguments. The command line is built once,
from the service's declaration (``candela_sdk.contract.Service.argv_for``); the runner decides
where it runs:

* ``local`` (:class:`LocalStepOperator`): a subprocess on the Airflow worker;
* ``kubernetes`` (:class:`KubernetesStepOperator`): a pod running the service's image.

``CANDELA_RUNNER`` picks the runner when the DAG file is parsed (see :func:`step_operator_class`).
"""

from __future__ import annotations

from typing import Any

# the Airflow pool of the steps whose model runs on a GPU (created by `candela up` and by
# `candela cluster init`; its slots bound the GPU steps that wait for a GPU at once)
GPU_POOL = "candela_gpu"


def step_operator_class(runner: str | None = None) -> Any:
    """The operator class for ``runner`` (default: the ``CANDELA_RUNNER`` setting, ``local``)."""
    if runner is None:
        from pydantic import ValidationError

        from candela_operators.settings import get_settings

        try:
            runner = get_settings().runner
        except ValidationError as exc:
            bad = [e["input"] for e in exc.errors() if e["loc"] == ("runner",)]
            if not bad:
                raise
            runner = str(bad[0])
    if runner == "local":
        from candela_operators.local import LocalStepOperator

        return LocalStepOperator
    if runner == "kubernetes":
        from candela_operators.kubernetes import KubernetesStepOperator

        return KubernetesStepOperator
    raise ValueError(f"CANDELA_RUNNER must be 'local' or 'kubernetes', not {runner!r}")
