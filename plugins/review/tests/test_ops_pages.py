"""The operations routes of the review app: Prometheus /metrics, the usage and scaling pages."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from candela.db import metrics, scaling
from candela.settings import Settings
from candela_review.app import create_app


def allow_all() -> str:
    return "test-user"


def test_metrics_usage_and_scaling(catalog_dsn, tmp_path):
    metrics.attribute_run(catalog_dsn, "s2_change_detection", "r1", "alice")
    metrics.add_step(catalog_dsn, {
        "dag_id": "s2_change_detection", "run_id": "r1", "task_id": "preprocess",
        "service": "preprocess", "started_at": dt.datetime.now(dt.UTC).timestamp(),
        "duration_s": 1800.0, "cpu_s": 3600.0, "peak_rss_mib": 2048.0, "exit_code": 0,
    })  # fmt: skip
    metrics.set_health(catalog_dsn, "postgresql", True, "accepts connections")
    scaling.record(catalog_dsn, [{
        "mode": "plan", "policy": "demand", "group": "gpu", "action": "scale_up", "count": 2,
        "why": "3 pod(s) waiting need 2 more node(s)", "inputs": {"waiting_pods": 3},
        "outcome": "planned",
    }])  # fmt: skip
    app = create_app(Settings(home=tmp_path), catalog_dsn, auth=allow_all)
    with TestClient(app) as c:
        r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert 'candela_service_up{service="postgresql"} 1.0' in r.text
        assert (
            'candela_scaling_decisions_total{action="scale_up",group="gpu",outcome="planned"} 1.0'
            in r.text
        )
        u = c.get("/usage").json()
        assert u["totals"]["alice"]["cpu_hours"] == 1.0 and u["totals"]["alice"]["runs"] == 1
        page = c.get("/usage", headers={"accept": "text/html"})
        assert page.status_code == 200 and "<td>alice</td>" in page.text
        assert c.get("/usage?days=0").status_code == 400
        s = c.get("/scaling").json()
        assert s[0]["why"] == "3 pod(s) waiting need 2 more node(s)"
        page = c.get("/scaling", headers={"accept": "text/html"})
        assert "need 2 more node(s)" in page.text and "planned" in page.text
