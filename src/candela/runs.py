"""Run bookkeeping: output keys, claims, watches (their rows: :mod:`candela.db.runs`).

Output keys name a parameter set: every run of the same workflow with the same parameters
writes under ``results/<workflow>/<key>/<run>`` (its own prefix, so no run changes what another
published; the later run names the earlier ones). A claim on the key keeps two identical runs
from running at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class RunConflict(Exception):
    """An identical run holds the output key."""


def output_key(dag_id: str, params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{dag_id}\n{canonical}".encode()).hexdigest()[:16]


def workflow_key(dag_id: str, conf: dict[str, Any]) -> str:
    """The output key of a run of ``dag_id`` with ``conf``: its typed run configuration, all
    defaults filled in, so that a conf given in full or in part, at the call (the API server's
    run guard) or in the run (``plan_run``, the callbacks), gives the same key. Workflows
    without a typed configuration hash ``conf`` as it is. :class:`candela.workflows.BadRunConf`
    when the workflow refuses ``conf``."""
    from candela.workflows import WORKFLOWS

    model = WORKFLOWS.get(dag_id)
    params = conf if model is None else model.checked(conf).model_dump(mode="json")
    return output_key(dag_id, params)


@dataclass
class Watch:
    name: str
    collection: str
    bbox: list[float]
    tile: str | None
    model: str
    max_cloud: float
    every_days: int
    since: dt.date
    last_run_at: dt.datetime | None = None
    last_run_id: str | None = None

    def due(self, now: dt.datetime) -> bool:
        if self.since > now.date():
            return False  # a watch that starts in the future has nothing to compare yet
        return self.last_run_at is None or now - self.last_run_at >= dt.timedelta(
            days=self.every_days
        )

    def conf(self, today: dt.date, start: dt.date | None = None) -> dict[str, Any]:
        """Pipeline parameters: every product since ``start`` (default: since the watch began),
        compared pairwise; :class:`candela.workflows.BadRunConf` if the watch is not valid."""
        from candela.workflows import ChangeDetectionConf

        fields: dict[str, Any] = {
            "collection": self.collection,
            "bbox": list(self.bbox),
            "start": start or self.since,
            "end": today,
            "max_cloud": self.max_cloud,
            "model": self.model,
        }
        if self.tile:
            fields["tile"] = self.tile
        return ChangeDetectionConf.checked(fields).conf()
