"""The simulator: trace checks, a hand-computed replay, the shipped traces, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candela.cli import app
from candela.scaling.config import default_config
from candela.scaling.simulator import TraceError, parse_trace, percentile, read_trace, simulate

REPO = Path(__file__).resolve().parents[2]
TRACES = sorted((REPO / "data" / "scaling").glob("*.csv"))
HEAD = "run,user,arrival_s,stage,service,cpu,memory_gib,gpu,duration_s"


def test_bad_rows_named_by_line():
    lines = [
        "# a comment",
        HEAD,
        "a,u,0,0,search,1,1,0,10",
        "a,u,0,1,pre,x,1,0,10",
        "b,u,0,0,pre,1,1,0.5,10",
        "c,u,0,0,pre,1,1,0,-3",
        "a,v,0,2,pre,1,1,0,10",
        "d,u,0,0,pre,1,1,0",
    ]
    with pytest.raises(TraceError) as e:
        parse_trace(lines, "t.csv")
    msg = str(e.value)
    assert "line 4: cpu 'x' is not a number" in msg
    assert "line 5: gpu '0.5' is not a whole number" in msg
    assert "line 6: duration_s must be > 0" in msg
    assert "line 7: run 'a' has user 'u'" in msg
    assert "line 8: 8 fields, 9 expected" in msg
    assert "line 3:" not in msg
    with pytest.raises(TraceError, match="line 1: the header"):
        parse_trace(["run,user", "a,u"])
    with pytest.raises(TraceError, match="no rows"):
        parse_trace([HEAD])


def test_step_that_fits_no_node_is_refused():
    steps = parse_trace([HEAD, "a,u,0,0,big,64,1,0,10"])
    with pytest.raises(TraceError, match="line 2: .* fits no node"):
        simulate(steps, default_config())


@pytest.mark.parametrize("policy", ["demand", "threshold"])
def test_hand_computed_replay(policy):
    # one CPU step (a ready CPU node: no wait), then one GPU step: the GPU group starts at zero,
    # a node is asked for at the next pass (t = 0 s... the CPU step ends at 100 s, the GPU step
    # is ready then, the pass at 120 s adds a node, ready at 120 + 240 = 360 s)
    steps = parse_trace([HEAD, "a,u,0,0,pre,2,2,0,100", "a,u,0,1,detect,2,4,1,100"])
    r = simulate(steps, default_config().with_policy(policy))
    assert r.wait_p50_s == pytest.approx(130)  # (0 + 260) / 2
    assert r.wait_max_s == pytest.approx(260)
    assert r.makespan_s == pytest.approx(460)
    if policy == "threshold":  # the busy GPU node is at load 1.0 (its GPU): one more is asked
        assert r.scale_ups == 2 and r.nodes_max == {"cpu": 1, "gpu": 2}
        return
    assert r.scale_ups == 1 and r.scale_downs == 1
    assert r.nodes_max == {"cpu": 1, "gpu": 1}
    # the GPU node lives from 120 s until a pass removes it (empty at 460 s)
    gone = [e for e in r.events if e["action"] == "scale_down"][0]["t_s"]
    assert gone >= 460
    assert r.node_hours["gpu"] == pytest.approx((gone - 120) / 3600)
    assert r.node_hours["cpu"] >= gone / 3600


def test_percentile():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 95) == 5
    assert percentile([], 95) == 0


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.stem)
def test_shipped_traces_demand_beats_threshold(path):
    assert len(TRACES) == 3
    steps = read_trace(path)
    th = simulate(steps, default_config().with_policy("threshold"))
    de = simulate(steps, default_config().with_policy("demand"))
    assert th.steps == de.steps == len(steps)
    assert de.wait_p95_s < th.wait_p95_s
    assert sum(de.node_hours.values()) <= sum(th.node_hours.values())


def test_cli_simulate_json_and_plot(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("\n".join([HEAD, "a,u,0,0,pre,2,2,0,100", "b,v,10,0,detect,2,4,1,50"]))
    png = tmp_path / "p.png"
    res = CliRunner().invoke(
        app, ["scale", "simulate", "--trace", str(trace), "--policy", "threshold", "--json",
              "--plot", str(png)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["policy"] == "threshold" and out["steps"] == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.csv"
    bad.write_text(HEAD + "\na,u,zero,0,pre,1,1,0,1\n")
    res = CliRunner().invoke(app, ["scale", "simulate", "--trace", str(bad)])
    assert res.exit_code == 2
    assert "line 2: arrival_s 'zero' is not a number" in res.output
