"""Monitoring tables: the collector (node sample, spooled steps, service checks and their
changes), retention/downsampling, the Prometheus exposition, per-user usage and quotas."""

from __future__ import annotations

import datetime as dt
import json
import socket

import pytest

from candela import metrics
from candela.db import metrics as table
from candela.settings import Settings
from candela_operators.usage import spool, spool_dir


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path) -> Settings:
    (tmp_path / "storage").mkdir()
    return Settings(home=tmp_path, airflow_url=f"http://127.0.0.1:{_closed_port()}")


def _step(run: str, task: str, cpu_s: float, user: str | None = "alice", **kw) -> dict:
    return {"dag_id": "s2_change_detection", "run_id": run, "task_id": task, "map_index": -1,
            "try_number": 1, "service": kw.pop("service", "preprocess"), "user": user,
            "started_at": kw.pop("started_at", dt.datetime.now(dt.UTC).timestamp()),
            "duration_s": kw.pop("duration_s", 3600.0), "cpu_s": cpu_s,
            "peak_rss_mib": kw.pop("peak_rss_mib", 1024.0), "exit_code": 0, **kw}  # fmt: skip


def test_collector_pass(catalog_dsn, settings):
    spool(settings.home, _step("r1", "preprocess", 7200.0))
    bad = spool_dir(settings.home) / "0-bad.json"
    bad.write_text("{not json")
    done = metrics.collect(catalog_dsn, settings)
    assert done["steps"] == 1
    assert not list(spool_dir(settings.home).glob("*.json"))  # moved, the bad one set aside
    assert (spool_dir(settings.home) / "0-bad.bad").exists()
    (node,) = table.latest_nodes(catalog_dsn)
    assert node["node"] == socket.gethostname() and 0 <= node["mem_pct"] <= 100
    health = {h["service"]: h for h in table.health(catalog_dsn)}
    assert health["postgresql"]["up"] and health["storage"]["up"]
    assert not health["airflow-api-server"]["up"]  # nothing listens there
    assert set(done["changed"]) == set(health)
    # the same states again: no new event; a change: one event
    assert metrics.collect(catalog_dsn, settings)["changed"] == []
    (settings.home / "storage").rmdir()
    assert metrics.collect(catalog_dsn, settings)["changed"] == []  # made at the first write
    settings = Settings(home=settings.home, airflow_url=settings.airflow_url,
                        storage_root=(settings.home / "gone" / "storage").as_uri())  # fmt: skip
    assert metrics.collect(catalog_dsn, settings)["changed"] == ["storage"]
    events = table.service_events(catalog_dsn)
    assert events[0][1] == "storage" and events[0][2] is False
    # the replayed record is not counted twice
    spool(settings.home, _step("r1", "preprocess", 7200.0))
    assert metrics.collect(catalog_dsn, settings)["steps"] == 0


def test_downsampling_and_retention(catalog_dsn):
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    old = now - dt.timedelta(days=2)
    for i, cpu in enumerate([10.0, 20.0, 30.0, 90.0]):  # 3 in one 5-min bucket, 1 in the next
        at = old + dt.timedelta(seconds=60 * i + (300 if i == 3 else 0))
        table.add_node_sample(catalog_dsn, {"node": "n", "at": at, "cpu_pct": cpu,
                                            "mem_pct": 50.0, "disk_free_gib": 10.0 - i,
                                            "uptime_s": 100.0 + i})  # fmt: skip
    fresh = now - dt.timedelta(minutes=1)
    table.add_node_sample(catalog_dsn, {"node": "n", "at": fresh, "cpu_pct": 5.0, "mem_pct": 1.0,
                                        "disk_free_gib": 1.0, "uptime_s": 1.0})  # fmt: skip
    ancient = now - dt.timedelta(days=400)
    with table.connect(catalog_dsn) as conn:
        conn.execute(
            "INSERT INTO candela.node_metrics VALUES ('1h', 'n', %s, 1, 1, 1, 1, NULL)", (ancient,)
        )
    assert metrics.retain(catalog_dsn, now) == 4
    raw = table.node_series(catalog_dsn, "raw")
    assert [r[2] for r in raw] == [5.0]
    five = table.node_series(catalog_dsn, "5m")
    assert [round(r[2], 3) for r in five] == [20.0, 90.0]
    assert table.node_series(catalog_dsn, "1h") == []


def test_prometheus_exposition(catalog_dsn, settings):
    table.add_step(catalog_dsn, _step("r9", "detect", 30.0, service="changedetect"))
    table.set_health(catalog_dsn, "postgresql", True, "ok")
    table.add_node_sample(catalog_dsn, metrics.node_sample(settings.home))
    text = metrics.exposition(catalog_dsn).decode()
    assert 'candela_service_up{service="postgresql"} 1.0' in text
    assert 'candela_step_cpu_seconds_total{service="changedetect"} 30.0' in text
    assert f'candela_node_cpu_percent{{node="{socket.gethostname()}"}}' in text
    assert 'candela_user_cpu_hours_24h{user="alice"}' in text


def test_usage_adds_up_to_the_recorded_runs(catalog_dsn):
    table.attribute_run(catalog_dsn, "s2_change_detection", "a1", "alice")
    table.attribute_run(catalog_dsn, "s2_change_detection", "b1", "bob")
    table.attribute_run(catalog_dsn, "s2_change_detection", "b2", "bob")  # no step measured yet
    table.add_step(catalog_dsn, _step("a1", "preprocess", 3600.0, user=None))
    table.add_step(catalog_dsn, _step("a1", "mosaic", 1800.0, user=None, peak_rss_mib=2048.0))
    table.add_step(catalog_dsn, _step("b1", "preprocess", 720.0, user="someone-else"))
    table.add_step(catalog_dsn, _step("w1", "preprocess", 360.0, user="carol"))  # not via guard
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    rows = table.usage(catalog_dsn, since)
    by = {r["who"]: r for r in rows}
    assert by["alice"]["runs"] == 1 and by["alice"]["steps"] == 2
    assert by["alice"]["cpu_hours"] == pytest.approx(1.5)
    assert by["alice"]["memory_gib_hours"] == pytest.approx(1 + 2)  # 1 GiB × 1 h + 2 GiB × 1 h
    assert by["bob"]["runs"] == 2 and by["bob"]["cpu_hours"] == pytest.approx(0.2)
    assert by["carol"]["runs"] == 1  # attributed by Airflow's triggering user
    assert sum(r["runs"] for r in rows) == 4
    assert table.used_today(catalog_dsn, "bob", since)["runs"] == 2
    assert table.usage(catalog_dsn, since, "bob")[0]["who"] == "bob"


def test_quota_rows(catalog_dsn):
    assert table.quota_of(catalog_dsn, "alice") is None
    table.set_quota(catalog_dsn, "*", 10, None, None)
    table.set_quota(catalog_dsn, "alice", 2, 1.5, 0)
    assert table.quota_of(catalog_dsn, "alice")["runs_per_day"] == 2
    assert table.quota_of(catalog_dsn, "bob")["username"] == "*"
    json.dumps(table.quota_of(catalog_dsn, "alice"))


def test_check_quota_names_the_quota(catalog_dsn):
    from candela.usage import QuotaExceeded, check_quota

    table.attribute_run(catalog_dsn, "s2_change_detection", "a1", "alice")
    table.add_step(catalog_dsn, _step("a1", "preprocess", 5400.0))
    check_quota(catalog_dsn, "alice")  # no quota: fine
    table.set_quota(catalog_dsn, "alice", None, 2.0, None)
    check_quota(catalog_dsn, "alice")  # 1.5 of 2 CPU-hours
    table.set_quota(catalog_dsn, "*", None, 1.0, None)
    check_quota(catalog_dsn, "alice")  # her own row wins
    with pytest.raises(QuotaExceeded, match="quota cpu_hours_per_day exceeded: .*limit is 1"):
        table.set_quota(catalog_dsn, "alice", None, 1.0, None)
        check_quota(catalog_dsn, "alice")
