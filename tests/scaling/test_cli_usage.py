"""`candela usage`, `candela usage quota`, `candela scale plan|decisions` against a real database."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from candela.cli import app
from candela.db import metrics as table


@pytest.fixture
def env(catalog_dsn, monkeypatch, tmp_path):
    monkeypatch.setenv("CANDELA_DATABASE_URL", catalog_dsn)
    monkeypatch.setenv("CANDELA_HOME", str(tmp_path))
    monkeypatch.delenv("CANDELA_RUNNER", raising=False)
    monkeypatch.delenv("CANDELA_SCALING_MODE", raising=False)
    return catalog_dsn


def _step(run: str, task: str, cpu_s: float, user: str) -> dict:
    return {"dag_id": "s2_change_detection", "run_id": run, "task_id": task, "service": "x",
            "user": user, "started_at": dt.datetime.now(dt.UTC).timestamp(),
            "duration_s": 60.0, "cpu_s": cpu_s, "peak_rss_mib": 512.0, "exit_code": 0}  # fmt: skip


def test_usage_json_adds_up(env):
    table.add_step(env, _step("r1", "a", 1800, "alice"))
    table.add_step(env, _step("r1", "b", 1800, "alice"))
    table.add_step(env, _step("r2", "a", 360, "bob"))
    res = CliRunner().invoke(app, ["usage", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["totals"]["alice"]["cpu_hours"] == pytest.approx(1.0)
    assert out["totals"]["alice"]["runs"] == 1 and out["totals"]["bob"]["runs"] == 1
    res = CliRunner().invoke(app, ["usage", "--user", "bob", "--json"])
    assert list(json.loads(res.stdout)["totals"]) == ["bob"]
    res = CliRunner().invoke(app, ["usage"])
    assert res.exit_code == 0 and "alice" in res.stdout
    res = CliRunner().invoke(app, ["usage", "--since", "last tuesday"])
    assert res.exit_code == 2 and "use 7d, 24h, 30m or an ISO date" in res.output


def test_quota_command(env):
    res = CliRunner().invoke(app, ["usage", "quota", "alice", "--runs-per-day", "3"])
    assert res.exit_code == 0, res.output
    assert table.quota_of(env, "alice")["runs_per_day"] == 3


def test_scale_plan_and_decisions(env):
    res = CliRunner().invoke(app, ["scale", "plan", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["group"] for r in rows} == {"cpu", "gpu"}
    assert all(r["mode"] == "plan" for r in rows)
    res = CliRunner().invoke(app, ["scale", "decisions", "--json"])
    assert len(json.loads(res.stdout)) == 2
    res = CliRunner().invoke(app, ["scale", "decisions"])
    assert res.exit_code == 0 and "plan" in res.stdout


def test_status_live_figures(env, capsys):
    from candela import cli_scale
    from candela.db import scaling
    from candela.metrics import node_sample
    from candela.settings import get_settings

    table.add_node_sample(env, node_sample(get_settings().home))
    table.set_health(env, "postgresql", True, "accepts connections")
    table.add_step(env, _step("r1", "a", 1800, "alice"))
    scaling.record(env, [{"mode": "plan", "policy": "demand", "group": "cpu", "action": "none",
                          "count": 0, "why": "no node idle long enough", "outcome": "none"}])  # fmt: skip
    cli_scale.print_live_figures()
    out = capsys.readouterr().out
    assert "postgresql" in out and "up" in out
    assert "last 24 h: 1 run(s), 0.500 CPU-hours" in out
    assert "autoscaler (plan" in out and "no node idle long enough" in out
