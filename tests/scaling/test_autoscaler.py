"""The autoscaler's pass on this machine (plan only, recorded) and the poll trigger."""

from __future__ import annotations

import asyncio

import pytest

from candela.scaling import autoscaler
from candela.scaling.config import default_config
from candela.scaling.policy import ClusterState, Node, Pod
from candela_operators.poll import PollTrigger, resolve


def test_local_state_is_this_machine():
    import psutil

    state = autoscaler.local_state(default_config(), 100.0)
    (node,) = state.nodes
    assert node.group == "cpu" and node.ready
    assert node.cpu == psutil.cpu_count()
    assert node.load is not None and 0 <= node.load <= 1
    assert state.metrics_at == 100.0


def _busy(config, now):
    node = Node("here", "cpu", True, 2, 8, requested_cpu=2, pods=1, load=1.0)
    return ClusterState(now, [node], [Pod(f"r{i}", 1, 0) for i in range(9)], now)


def test_plan_only_pass_is_recorded(catalog_dsn, monkeypatch, tmp_path):
    from candela.db import scaling as table

    monkeypatch.setenv("CANDELA_DATABASE_URL", catalog_dsn)
    monkeypatch.setenv("CANDELA_HOME", str(tmp_path))
    monkeypatch.delenv("CANDELA_RUNNER", raising=False)
    monkeypatch.delenv("CANDELA_SCALING_MODE", raising=False)
    monkeypatch.setattr(autoscaler, "local_state", _busy)
    assert autoscaler.watch() is not None  # a change is planned
    rows = {r["group"]: r for r in autoscaler.run_once()}
    assert rows["cpu"]["action"] == "scale_up" and rows["cpu"]["outcome"] == "planned"
    assert rows["cpu"]["mode"] == "plan" and rows["cpu"]["count"] == 2  # 9 cores on 8-core nodes
    got = table.recent(catalog_dsn)
    assert {(r["node_group"], r["action"], r["outcome"]) for r in got} == {
        ("cpu", "scale_up", "planned"),
        ("gpu", "none", "none"),
    }
    cpu = next(r for r in got if r["node_group"] == "cpu")
    assert cpu["inputs"]["waiting_pods"] == 9 and "need 2 more node(s)" in cpu["why"]
    state = table.load_state(catalog_dsn)
    assert "cpu" in state["last_up"] and state["last_pass"] > 0
    # within the cooldown and the heartbeat: nothing to wake up for
    assert autoscaler.watch(heartbeat_s=3600) is None
    assert autoscaler.watch(heartbeat_s=0) is not None


def test_poll_trigger_fires_with_the_result_and_survives_errors():
    t = PollTrigger("os:getcwd", poll_s=0.01)
    cls, kwargs = t.serialize()
    assert cls == "candela_operators.poll.PollTrigger"
    again = PollTrigger(**kwargs)

    async def first(trigger):
        async for event in trigger.run():
            return event.payload

    import os

    assert asyncio.run(first(again)) == os.getcwd()
    failing = PollTrigger("json:loads", {"s": "{"}, poll_s=0.01)
    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(first(failing), 0.2))
    with pytest.raises(ValueError, match="module:function"):
        resolve("os.getcwd")
