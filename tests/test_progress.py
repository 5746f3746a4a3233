"""What `candela run` shows (candela.progress) and how it follows a run (AirflowClient.follow)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import httpx
import pytest

from candela import progress

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def _t(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).isoformat()


def test_rows_group_mapped_steps_with_elapsed_and_eta() -> None:
    tasks = {
        "plan_run": "success",
        "preprocess[0]": "success",
        "preprocess[1]": "running",
        "preprocess[2]": "queued",
        "detect_changes": "none",
    }
    times = {
        "plan_run": {"start": _t(100), "end": _t(98)},
        "preprocess[0]": {"start": _t(90), "end": _t(60)},
        "preprocess[1]": {"start": _t(80), "end": None},
    }
    durations = {"preprocess": 50.0, "detect_changes": 40.0, "plan_run": 1.0}
    rows = {r.task: r for r in progress.rows(tasks, times, durations, NOW)}
    assert list(rows) == ["plan_run", "preprocess", "detect_changes"]
    assert rows["plan_run"].state == "success" and rows["plan_run"].elapsed_s == 2
    pre = rows["preprocess"]
    assert pre.instances == 3 and pre.state == "1 running, 1 queued, 1 success"
    assert pre.elapsed_s == 90  # from the first start, still going
    assert pre.eta_s == 0  # slower than usual: no negative ETA
    assert rows["detect_changes"].eta_s == 40 and rows["detect_changes"].elapsed_s is None
    no_history = progress.rows(tasks, times, {}, NOW)
    assert all(r.eta_s is None for r in no_history)


def test_rows_follow_the_dag_order_when_airflow_gives_it() -> None:
    """Airflow lists task instances alphabetically; the table shows the DAG's order."""
    from candela.airflow_api import dag_order

    listed = {"detect_changes": "none", "plan_run": "success", "publish": "none",
              "search_products": "running", "zz_unknown": "none"}  # fmt: skip
    dag = [
        {"task_id": "publish", "downstream_task_ids": []},
        {"task_id": "detect_changes", "downstream_task_ids": ["publish"]},
        {"task_id": "plan_run", "downstream_task_ids": ["search_products"]},
        {"task_id": "search_products", "downstream_task_ids": ["detect_changes"]},
    ]
    rows = progress.rows(listed, {}, {}, NOW, order=dag_order(dag))
    assert [r.task for r in rows] == [
        "plan_run", "search_products", "detect_changes", "publish", "zz_unknown"
    ]  # fmt: skip
    assert [r.task for r in progress.rows(listed, {}, {}, NOW)] == list(listed)  # no order


def test_the_table_and_the_lines_fit_100_columns() -> None:
    from rich.console import Console

    long = "a_step_with_a_name_far_longer_than_any_column_can_hold_" * 2
    tasks = {f"{long}[{i}]": s for i, s in enumerate(["running", "failed", "up_for_retry"] * 9)}
    tasks |= {"publish": "none", "search_products": "success"}
    times = {k: {"start": _t(4000), "end": None} for k in tasks}
    rows = progress.rows(tasks, times, {long: 7000.0}, NOW)
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=True, color_system=None).print(
        progress.table("running", rows, 4000.0)
    )
    lines = out.getvalue().splitlines()
    assert lines and max(len(line) for line in lines) <= progress.WIDTH, lines
    text = out.getvalue()
    assert "1h06m" in text and "ETA" in text and "~" in text  # elapsed and ETA shown
    changed = progress.changed_lines(None, tasks, rows, "12:00:00")
    assert len(changed) == 3 and max(len(c) for c in changed) <= progress.WIDTH
    assert progress.changed_lines(tasks, tasks, rows, "12:00:01") == []


def _client(handler: Any) -> Any:
    from candela.airflow_api import AirflowClient

    return AirflowClient("http://af", token="t", transport=httpx.MockTransport(handler))


def test_follow_retries_with_backoff_while_airflow_does_not_answer(monkeypatch) -> None:
    from candela import airflow_api

    sleeps: list[float] = []
    monkeypatch.setattr(airflow_api.time, "sleep", sleeps.append)
    answers = iter(["down", "503", "timeout", "running", "down", "success"])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/taskInstances"):
            return httpx.Response(200, json={"task_instances": []})
        what = next(answers)
        if what == "down":
            raise httpx.ConnectError("refused", request=request)
        if what == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if what == "503":
            return httpx.Response(503, json={"detail": "busy"})
        return httpx.Response(200, json={"state": what})

    with _client(handler) as c:
        final = c.follow("d", "r", lambda st: seen.append(st.state), poll=1.0, max_backoff=3.0)
    assert final.state == "success" and seen == ["running", "success"]
    assert sleeps == [1.0, 2.0, 3.0, 1.0, 1.0]  # backoff doubles, capped; reset by an answer


def test_follow_stops_at_once_on_a_refusal_and_at_its_deadline(monkeypatch) -> None:
    from candela import airflow_api
    from candela.airflow_api import AirflowApiError

    monkeypatch.setattr(airflow_api.time, "sleep", lambda s: None)

    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"detail": "no"})

    with _client(forbidden) as c, pytest.raises(AirflowApiError) as err:
        c.follow("d", "r", lambda st: None)
    assert err.value.status == 403

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _client(down) as c, pytest.raises(AirflowApiError) as err:
        c.follow("d", "r", lambda st: None, poll=0.0, timeout=0.05)
    assert err.value.status is None


def test_step_durations_are_medians_and_never_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v2/dags/d/dagRuns/~/taskInstances"
        assert request.url.params["state"] == "success"
        tis = [{"task_id": "a", "duration": d} for d in (1.0, 9.0, 3.0)]
        return httpx.Response(200, json={"task_instances": [*tis, {"task_id": "b"}]})

    with _client(handler) as c:
        assert c.step_durations("d") == {"a": 3.0}
    with _client(lambda r: httpx.Response(500, json={})) as c:
        assert c.step_durations("d") == {}


def test_run_outputs_are_printed_under_the_runs_prefix(capsys: pytest.CaptureFixture) -> None:
    """`candela run` prints the run's prefix once, then short paths, and the earlier runs with
    the same parameters."""
    from types import SimpleNamespace

    from candela import cli

    prefix = "file:///home/u/.candela/storage/results/s2_change_detection/k/manual__x-1"
    summary = {
        "prefix": prefix,
        "same_parameters_as": ["manual__earlier"],
        "results": [
            {
                "item": f"{prefix}/changes/a__b/item.json",
                "outputs": {
                    "change_probability": f"{prefix}/changes/a__b/change_probability.tif",
                    "change_mask": f"{prefix}/changes/a__b/change_mask.tif",
                    "quicklook": f"{prefix}/changes/a__b/quicklook.png",
                    "change_polygons_gpkg": f"{prefix}/changes/a__b/change_polygons.gpkg",
                },
                "changed_area_ha": 9.3,
                "changed_fraction": 0.007,
                "model": "cva",
                "threshold": 0.5,
            }
        ],
    }
    client = SimpleNamespace(xcom=lambda *a: summary, base_url="http://localhost:8080")
    cli._print_outputs(client, "s2_change_detection", "manual__x")
    out = capsys.readouterr().out
    assert f"outputs of this run in {prefix}/" in out
    assert "change map:          changes/a__b/change_probability.tif" in out
    assert "change polygons:     changes/a__b/change_polygons.gpkg" in out
    assert "same parameters as run(s) manual__earlier" in out
    lines = [x for x in out.splitlines() if not x.startswith(("outputs of", "review page"))]
    assert max(len(x) for x in lines) <= 100, lines
