"""The scaling configuration and the two policies, on hand-made cluster states."""

from __future__ import annotations

import re

import pytest

from candela.scaling.config import ConfigError, NodeGroup, default_config, load_config, parse_config
from candela.scaling.policy import ClusterState, Memory, Node, Pod, decide, nodes_needed


def _cfg(policy: str = "demand", **kw: object):
    return default_config().model_copy(update={"policy": policy, **kw})


def _node(name: str, group: str = "cpu", ready: bool = True, req: float = 0.0, **kw):
    g = default_config().group(group)
    return Node(
        name, group, ready, g.cpu, g.memory_gib, g.gpus, requested_cpu=req,
        pods=1 if req else 0, empty_since=None if req else kw.pop("empty_since", 0.0), **kw,
    )  # fmt: skip


def _by_group(ds):
    return {d.group: d for d in ds}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"groups": [{"name": "cpu", "min_nodes": 3, "max_nodes": 2}]}, "groups.0: min_nodes (3)"),
        ({"groups": [{"name": "cpu"}], "budget_per_hour": -1}, "budget_per_hour"),
        ({"groups": [{"name": "g", "gpu": True}]}, "gpus must be >= 1"),
        ({"groups": [{"name": "cpu"}], "threshold": {"scale_up_at": 0.2}}, "scale_down_below"),
        ({"groups": [{"name": "cpu"}, {"name": "cpu"}]}, "duplicate"),
        ({"groups": [{"name": "cpu"}], "colour": 1}, "colour"),
    ],
)
def test_bad_config_refused_naming_the_field(data, field):
    with pytest.raises(ConfigError, match=re.escape(field)):
        parse_config(data)


def test_load_toml_and_bad_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('policy = "threshold"\n[[groups]]\nname = "cpu"\nmin_nodes = 1\nmax_nodes = 4\n')
    assert load_config(p).policy == "threshold"
    assert load_config(p).groups[0].max_nodes == 4
    p.write_text("policy = ")
    with pytest.raises(ConfigError, match="not valid toml"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "none.toml")


def test_demand_packs_waiting_pods_on_new_nodes():
    state = ClusterState(100.0, [_node("c1", req=8)], [Pod(f"p{i}", 2, 4) for i in range(9)], 100)
    d = _by_group(decide(_cfg(), state, Memory()))
    assert d["cpu"].action == "scale_up" and d["cpu"].count == 3  # 9 × 2 cores on 8-core nodes
    assert d["gpu"].action == "none"
    assert d["cpu"].inputs["waiting_pods"] == 9


def test_demand_counts_booting_nodes():
    booting = _node("c2", ready=False)
    g = default_config().group("cpu")
    assert nodes_needed(g, [Pod("a", 2, 4)] * 4, [booting]) == (0, [])
    assert nodes_needed(g, [Pod("a", 2, 4)] * 5, [booting]) == (1, [])
    big = Pod("big", 64, 4)
    assert nodes_needed(g, [big], []) == (0, [big])


def test_gpu_pod_scales_the_gpu_group_from_zero():
    state = ClusterState(0.0, [_node("c1")], [Pod("d", 2, 4, gpu=1), Pod("e", 2, 4, gpu=1)], 0)
    for policy in ("demand", "threshold"):
        d = _by_group(decide(_cfg(policy), state, Memory()))
        assert d["gpu"].action == "scale_up", policy
    assert _by_group(decide(_cfg(), state, Memory()))["gpu"].count == 2


def test_threshold_adds_one_node_at_a_time_and_waits_for_booting():
    busy = [_node("c1", req=8), _node("c2", req=7)]
    waiting = [Pod(f"p{i}", 2, 4) for i in range(9)]
    d = _by_group(decide(_cfg("threshold"), ClusterState(0, busy, waiting, 0), Memory()))
    assert d["cpu"].action == "scale_up" and d["cpu"].count == 1
    state = ClusterState(0, [*busy, _node("c3", ready=False)], waiting, 0)
    assert _by_group(decide(_cfg("threshold"), state, Memory()))["cpu"].action == "none"


def test_max_nodes_budget_cooldown_and_backoff():
    waiting = [Pod(f"p{i}", 8, 4) for i in range(30)]
    state = ClusterState(1000.0, [_node("c1", req=8)], waiting, 1000)
    d = _by_group(decide(_cfg(budget_per_hour=None), state, Memory()))["cpu"]
    assert d.count == 19 and "max_nodes 20" in d.why
    d = _by_group(decide(_cfg(budget_per_hour=5.0), state, Memory()))["cpu"]
    assert d.count == 4 and "budget" in d.why
    mem = Memory()
    mem.done(d, 990.0)
    assert "cooldown" in _by_group(decide(_cfg(), state, mem))["cpu"].why
    mem = Memory()
    mem.failed("cpu", 990.0, 300)
    got = _by_group(decide(_cfg(), state, mem))["cpu"]
    assert got.action == "none" and "backing off" in got.why


def test_min_nodes_restored():
    d = _by_group(decide(_cfg(), ClusterState(0, [], [], 0), Memory()))
    assert d["cpu"].action == "scale_up" and d["cpu"].count == 1


def test_demand_scale_down_idle_nodes_only_with_fresh_metrics():
    nodes = [_node("c1", req=2), _node("c2", empty_since=0), _node("c3", empty_since=900)]
    cfg = _cfg()
    d = _by_group(decide(cfg, ClusterState(1000, nodes, [], 990), Memory()))["cpu"]
    assert d.action == "scale_down" and d.nodes == ("c2",)  # c3 empty only 100 s
    stale = _by_group(decide(cfg, ClusterState(1000, nodes, [], 500), Memory()))["cpu"]
    assert stale.action == "none" and "stale" in stale.why
    missing = _by_group(decide(cfg, ClusterState(1000, nodes, [], None), Memory()))["cpu"]
    assert missing.action == "none"
    busy = _by_group(decide(cfg, ClusterState(1000, nodes, [Pod("p", 1, 1)], 990), Memory()))
    assert busy["cpu"].action != "scale_down"


def test_threshold_scale_down_one_empty_node_below_threshold():
    nodes = [_node("c1", req=1), _node("c2", empty_since=10), _node("c3", empty_since=20)]
    d = _by_group(decide(_cfg("threshold"), ClusterState(1000, nodes, [], 1000), Memory()))["cpu"]
    assert d.action == "scale_down" and d.nodes == ("c3",)


def test_min_nodes_kept_on_scale_down():
    nodes = [_node("c1", empty_since=0)]
    d = _by_group(decide(_cfg(), ClusterState(5000, nodes, [], 5000), Memory()))["cpu"]
    assert d.action == "none" and d.why == "at min_nodes"


def test_group_shape():
    g = NodeGroup(name="gpu", gpu=True, gpus=2, max_nodes=2)
    assert nodes_needed(g, [Pod("a", 1, 1, gpu=1)] * 3, []) == (2, [])
