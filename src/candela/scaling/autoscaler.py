"""One autoscaler pass: observe the cluster, decide, act (or plan only), and say what happened.

* cluster mode: :meth:`candela.scaling.cloud.Kube.observe` (nodes of the managed groups, their
  pods' requests, unschedulable pods), actions through :class:`~candela.scaling.cloud.Actuator`;
* embedded mode (plan only, the default): this machine is the one node of the first CPU group,
  its load from psutil (CPU, memory); the work waiting for CPU is the load average above the
  core count (one "pod" of one core per runnable process beyond the cores). Nothing is created;
  the decisions are recorded as ``planned``.

A refusal of the cloud (credentials, unknown flavor/image/network, quota) is recorded as an
``error`` outcome and the group backs off; the pass itself never raises for it, so the sensor
keeps running.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from candela.scaling.config import ScalingConfig
from candela.scaling.policy import ClusterState, Decision, Memory, Node, Pod, decide

log = logging.getLogger(__name__)


def local_state(config: ScalingConfig, now: float) -> ClusterState:
    """This machine as one node of the first CPU group (psutil)."""
    import psutil

    group = next((g for g in config.groups if not g.gpu), config.groups[0])
    cpus = psutil.cpu_count() or 1
    cpu_load = psutil.cpu_percent(interval=0.5) / 100
    mem = psutil.virtual_memory()
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else cpu_load * cpus
    node = Node(
        name=socket.gethostname(),
        group=group.name,
        ready=True,
        cpu=float(cpus),
        memory_gib=mem.total / 2**30,
        requested_cpu=min(load1, cpus),
        requested_memory_gib=(mem.total - mem.available) / 2**30,
        pods=1,
        load=max(cpu_load, mem.percent / 100),
    )
    excess = max(0, int(load1 - cpus))
    waiting = [Pod(f"runnable-{i}", 1.0, 0.0) for i in range(excess)]
    return ClusterState(now, [node], waiting, now)


def memory_from(state: dict[str, Any]) -> tuple[Memory, dict[str, float]]:
    m = Memory(
        last_up=dict(state.get("last_up", {})),
        last_change=dict(state.get("last_change", {})),
        backoff_until=dict(state.get("backoff_until", {})),
    )
    return m, dict(state.get("empty_since", {}))


def memory_to(memory: Memory, empty_since: dict[str, float]) -> dict[str, Any]:
    return {
        "last_up": memory.last_up,
        "last_change": memory.last_change,
        "backoff_until": memory.backoff_until,
        "empty_since": empty_since,
    }


def _row(
    config: ScalingConfig, d: Decision, mode: str, outcome: str, detail: Any
) -> dict[str, Any]:
    return {
        "mode": mode,
        "policy": config.policy,
        "group": d.group,
        "action": d.action,
        "count": d.count,
        "nodes": list(d.nodes),
        "why": d.why,
        "inputs": d.inputs,
        "outcome": outcome,
        "detail": detail,
    }


def run_pass(
    config: ScalingConfig,
    state: ClusterState,
    memory: Memory,
    actuator: Any | None = None,
) -> list[dict[str, Any]]:
    """Decide on ``state`` and act through ``actuator`` (``None``: plan only); the rows to
    record, one per group. ``memory`` is updated."""
    from candela.scaling.cloud import CloudError

    mode = "plan" if actuator is None else "act"
    rows = []
    now = state.now
    for d in decide(config, state, memory):
        if d.action == "none":
            rows.append(_row(config, d, mode, "none", []))
            continue
        if actuator is None:
            memory.done(d, now)
            rows.append(_row(config, d, mode, "planned", []))
            continue
        group = config.group(d.group)
        try:
            if d.action == "scale_up":
                detail = actuator.scale_up(group, d.count)
                ok = [x for x in detail if x["outcome"] == "ready"]
            else:
                detail = actuator.scale_down(group, d.nodes)
                ok = [x for x in detail if x["outcome"] == "removed"]
        except CloudError as exc:
            log.warning("autoscaler: %s of %s refused: %s", d.action, d.group, exc)
            memory.failed(d.group, now, config.backoff_s)
            rows.append(_row(config, d, mode, "error", [{"error": str(exc)}]))
            continue
        failed = [x for x in detail if x["outcome"] == "failed"]
        if failed:
            memory.failed(d.group, now, config.backoff_s)
        if ok:
            memory.done(d, now)
        outcome = "done" if len(ok) == len(detail) else ("partial" if ok else "failed")
        rows.append(_row(config, d, mode, outcome, detail))
    return rows


HEARTBEAT_S = 600.0


def _setup() -> tuple[ScalingConfig, str | None, Any]:
    from candela.scaling.config import load_config
    from candela.settings import get_settings
    from candela_sdk.settings import platform_dsn

    s = get_settings()
    config = load_config(s.scaling_config)
    try:
        dsn = platform_dsn()
    except Exception as exc:
        log.warning("autoscaler: no platform database (%s): nothing recorded", exc)
        dsn = None
    return config, dsn, s


def _observe(
    config: ScalingConfig, settings: Any, empty_since: dict[str, float], now: float
) -> tuple[ClusterState, Any]:
    """The state, and the Kubernetes handle in cluster mode (``None`` embedded)."""
    if settings.runner != "kubernetes":
        return local_state(config, now), None
    from candela.scaling.cloud import Kube
    from candela_operators.settings import get_settings as k8s_settings

    ks = k8s_settings()
    kube = Kube.connect(ks.k8s_in_cluster, ks.k8s_config_file)
    return kube.observe(config, now, empty_since), kube


def watch(heartbeat_s: float = HEARTBEAT_S) -> dict[str, Any] | None:
    """What the sensor's trigger polls (after a pass of the metrics collector,
    :func:`candela.metrics.collect`): a payload when a pass has something to do (a planned
    change) or ``heartbeat_s`` passed since the last recorded pass, else ``None``."""
    import time

    from candela.db import scaling as table

    config, dsn, settings = _setup()
    now = time.time()
    if dsn:
        from candela.metrics import collect

        try:
            collect(dsn, settings)
        except Exception as exc:  # monitoring must not stop the watch
            log.warning("metrics collector: %s", exc)
    saved = table.load_state(dsn) if dsn else {}
    memory, empty = memory_from(saved)
    state, _ = _observe(config, settings, empty, now)
    changes = [d for d in decide(config, state, memory) if d.action != "none"]
    last = float(saved.get("last_pass", 0.0))
    if changes or now - last >= heartbeat_s:
        return {
            "why": "; ".join(f"{d.group}: {d.action} {d.count} ({d.why})" for d in changes)
            or f"heartbeat ({heartbeat_s:g} s)",
            "at": now,
        }
    return None


def run_once() -> list[dict[str, Any]]:
    """One recorded pass: plan only unless ``CANDELA_SCALING_MODE=act`` on a Kubernetes
    cluster (then OpenStack and Kubernetes act)."""
    import time

    from candela.db import scaling as table

    config, dsn, settings = _setup()
    now = time.time()
    saved = table.load_state(dsn) if dsn else {}
    memory, empty = memory_from(saved)
    state, kube = _observe(config, settings, empty, now)
    actuator = None
    if settings.scaling_mode == "act":
        if kube is None:
            log.warning(
                "autoscaler: CANDELA_SCALING_MODE=act needs the kubernetes runner; planning"
            )
        else:
            from candela.scaling.cloud import Actuator, CloudError, OpenStack

            try:
                actuator = Actuator(config, OpenStack.connect(config.provision.cloud), kube)
            except CloudError as exc:
                log.warning("autoscaler: %s; planning only this pass", exc)
    rows = run_pass(config, state, memory, actuator)
    if dsn:
        table.record(dsn, rows)
        table.save_state(dsn, memory_to(memory, empty) | {"last_pass": now})
    return rows
