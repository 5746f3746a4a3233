"""A discrete-event model of the elastic cluster, to compare policies on workload traces.

A **trace** is a CSV file, one row per step of a run::

    run,user,arrival_s,stage,service,cpu,memory_gib,gpu,duration_s

A run arrives at ``arrival_s``; its steps of stage 0 are then ready, those of stage ``k + 1``
when every step of stage ``k`` has ended (the DAG's fan-out/fan-in). Lines starting with ``#``
are comments. A bad row is refused with its line number and reason, and nothing is simulated.

The **cluster**: each group of the configuration starts at ``min_nodes`` ready nodes. A ready
step goes to the first node of its group (GPU steps to GPU nodes only, as the taint does) with
room for its requests, in arrival order (first come, first served, as the scheduler's queue);
otherwise it waits. Every ``interval_s`` the policy sees the nodes (booting ones included), the
waiting steps and fresh load figures, and decides; a new node is billed from its creation and
takes ``boot_s`` to boot and join; a removed node was empty. The run goes on after the last step
until every group is back at ``min_nodes`` (at most :data:`SETTLE_S` more), so a policy that keeps
idle nodes pays for them.

Reported: queue wait (ready → started) p50/p95/max over steps, makespan (first arrival → last
end), node-hours and cost per group, scale events; the series of nodes and queue for the plot.
"""

from __future__ import annotations

import csv
import heapq
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from candela.scaling.config import NodeGroup, ScalingConfig
from candela.scaling.policy import ClusterState, Memory, Node, Pod, decide

COLUMNS = ["run", "user", "arrival_s", "stage", "service", "cpu", "memory_gib", "gpu", "duration_s"]
SETTLE_S = 6 * 3600.0
STALL_S = 24 * 3600.0  # steps waiting this long with nothing running: the cluster cannot grow
MAX_ERRORS = 20


class TraceError(ValueError):
    """A trace with bad rows: each line number and reason."""


@dataclass(frozen=True)
class Step:
    run: str
    user: str
    arrival_s: float
    stage: int
    service: str
    cpu: float
    memory_gib: float
    gpu: int
    duration_s: float
    line: int


def _number(value: str, name: str, integer: bool = False, positive: bool = False) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} {value!r} is not finite")
    if integer and x != int(x):
        raise ValueError(f"{name} {value!r} is not a whole number")
    if x < 0 or (positive and x == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, not {value}")
    return x


def parse_trace(lines: list[str], name: str = "trace") -> list[Step]:
    """The steps of a trace; :class:`TraceError` listing the bad rows (line: reason)."""
    errors: list[str] = []
    steps: list[Step] = []
    runs: dict[str, tuple[str, float, int]] = {}
    header_seen = False
    for lineno, text in enumerate(lines, start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        row = next(csv.reader([text]))
        if not header_seen:
            header_seen = True
            if [c.strip() for c in row] != COLUMNS:
                raise TraceError(
                    f"{name}: line {lineno}: the header must be {','.join(COLUMNS)}, "
                    f"not {text.strip()}"
                )
            continue
        try:
            if len(row) != len(COLUMNS):
                raise ValueError(f"{len(row)} fields, {len(COLUMNS)} expected")
            run, user, service = row[0].strip(), row[1].strip(), row[4].strip()
            if not run or not user or not service:
                raise ValueError("run, user and service must not be empty")
            step = Step(
                run=run,
                user=user,
                arrival_s=_number(row[2], "arrival_s"),
                stage=int(_number(row[3], "stage", integer=True)),
                service=service,
                cpu=_number(row[5], "cpu", positive=True),
                memory_gib=_number(row[6], "memory_gib", positive=True),
                gpu=int(_number(row[7], "gpu", integer=True)),
                duration_s=_number(row[8], "duration_s", positive=True),
                line=lineno,
            )
            first = runs.setdefault(run, (step.user, step.arrival_s, lineno))
            if (first[0], first[1]) != (step.user, step.arrival_s):
                raise ValueError(
                    f"run {run!r} has user {first[0]!r} and arrival_s {first[1]:g} on line "
                    f"{first[2]}, not {step.user!r} and {step.arrival_s:g}"
                )
            steps.append(step)
        except ValueError as exc:
            errors.append(f"line {lineno}: {exc}")
            if len(errors) >= MAX_ERRORS:
                break
    if not header_seen:
        errors.append("no header and no rows")
    elif not steps and not errors:
        errors.append("no rows")
    if errors:
        raise TraceError(f"{name}: " + "; ".join(errors))
    return steps


def read_trace(path: Path | str) -> list[Step]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise TraceError(f"cannot read the trace {p}: {exc.strerror}") from None
    return parse_trace(text.splitlines(), str(p))


@dataclass
class _Node:
    name: str
    group: NodeGroup
    created: float
    ready_at: float
    free_cpu: float
    free_mem: float
    free_gpu: int
    running: int = 0
    empty_since: float | None = None
    removed: float | None = None


@dataclass
class SimResult:
    policy: str
    steps: int
    runs: int
    wait_p50_s: float
    wait_p95_s: float
    wait_max_s: float
    makespan_s: float
    node_hours: dict[str, float]
    cost: float
    scale_ups: int
    scale_downs: int
    nodes_max: dict[str, int]
    events: list[dict[str, Any]] = field(default_factory=list)
    # (t, {group: nodes incl. booting}, waiting steps)
    series: list[tuple[float, dict[str, int], int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "steps": self.steps,
            "runs": self.runs,
            "wait_p50_s": round(self.wait_p50_s, 1),
            "wait_p95_s": round(self.wait_p95_s, 1),
            "wait_max_s": round(self.wait_max_s, 1),
            "makespan_s": round(self.makespan_s, 1),
            "node_hours": {k: round(v, 2) for k, v in self.node_hours.items()},
            "node_hours_total": round(sum(self.node_hours.values()), 2),
            "cost": round(self.cost, 2),
            "scale_ups": self.scale_ups,
            "scale_downs": self.scale_downs,
            "nodes_max": self.nodes_max,
        }


def percentile(xs: list[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation, as numpy's default)."""
    if not xs:
        return 0.0
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def simulate(steps: list[Step], config: ScalingConfig) -> SimResult:
    """Replay ``steps`` through the cluster under ``config`` (its policy, groups, ``boot_s``)."""
    for s in steps:
        g = config.group_for(s.gpu)
        if g is None or s.cpu > g.cpu or s.memory_gib > g.memory_gib or s.gpu > g.gpus:
            raise TraceError(
                f"line {s.line}: step {s.service} of {s.run} ({s.cpu:g} cores, "
                f"{s.memory_gib:g} GiB, {s.gpu} GPU) fits no node of any group"
            )
    stages: dict[str, dict[int, list[Step]]] = {}
    for s in steps:
        stages.setdefault(s.run, {}).setdefault(s.stage, []).append(s)
    order = {r: sorted(st) for r, st in stages.items()}
    left: dict[tuple[str, int], int] = {}

    events: list[tuple[float, int, int, str, Any]] = []  # (t, priority, seq, kind, payload)
    seq = 0

    def push(t: float, prio: int, kind: str, payload: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, prio, seq, kind, payload))  # type: ignore[misc]

    arrivals = {r: min(s.arrival_s for s in st[order[r][0]]) for r, st in stages.items()}
    for r, t in arrivals.items():
        push(t, 1, "arrive", r)
    t0 = min(arrivals.values())

    nodes: list[_Node] = []
    counter = 0

    def add_node(g: NodeGroup, now: float, ready_at: float) -> None:
        nonlocal counter
        counter += 1
        n = _Node(f"{g.name}-{counter}", g, now, ready_at, g.cpu, g.memory_gib, g.gpus)
        nodes.append(n)
        if ready_at > now:
            push(ready_at, 0, "ready", n)
        else:
            n.empty_since = now

    for g in config.groups:
        for _ in range(g.min_nodes):
            add_node(g, t0, t0)

    queue: list[tuple[float, int, Step]] = []  # (ready time, line, step), FIFO
    waits: list[float] = []
    memory = Memory()
    result_events: list[dict[str, Any]] = []
    series: list[tuple[float, dict[str, int], int]] = []
    done_steps = 0
    last_end = t0
    ups = downs = 0

    def release_stage(run: str, idx: int, now: float) -> None:
        stage = order[run][idx]
        batch = stages[run][stage]
        left[(run, idx)] = len(batch)
        for s in batch:
            queue.append((now, s.line, s))

    def schedule(now: float) -> None:
        queue.sort(key=lambda q: (q[0], q[1]))
        kept = []
        for item in queue:
            s = item[2]
            g = config.group_for(s.gpu)
            for n in nodes:
                if (
                    n.removed is None
                    and n.group is g
                    and n.ready_at <= now
                    and s.cpu <= n.free_cpu + 1e-9
                    and s.memory_gib <= n.free_mem + 1e-9
                    and s.gpu <= n.free_gpu
                ):
                    n.free_cpu -= s.cpu
                    n.free_mem -= s.memory_gib
                    n.free_gpu -= s.gpu
                    n.running += 1
                    n.empty_since = None
                    waits.append(now - item[0])
                    push(now + s.duration_s, 0, "end", (s, n))
                    break
            else:
                kept.append(item)
        queue[:] = kept

    def state(now: float) -> ClusterState:
        view = []
        for n in nodes:
            if n.removed is not None:
                continue
            g = n.group
            view.append(
                Node(
                    n.name,
                    g.name,
                    n.ready_at <= now,
                    g.cpu,
                    g.memory_gib,
                    g.gpus,
                    g.cpu - n.free_cpu,
                    g.memory_gib - n.free_mem,
                    g.gpus - n.free_gpu,
                    n.running,
                    None,
                    n.empty_since,
                )
            )
        waiting = [
            Pod(f"{q[2].run}/{q[2].service}", q[2].cpu, q[2].memory_gib, q[2].gpu) for q in queue
        ]
        return ClusterState(now, view, waiting, now)

    def live(g: NodeGroup) -> int:
        return sum(1 for n in nodes if n.removed is None and n.group is g)

    def settled() -> bool:
        return all(live(g) <= g.min_nodes for g in config.groups)

    push(t0, 2, "tick", None)
    total = len(steps)
    end_time = t0
    while events:
        now, _, _, kind, payload = heapq.heappop(events)
        if kind == "arrive":
            release_stage(payload, 0, now)
            schedule(now)
        elif kind == "ready":
            payload.empty_since = now
            schedule(now)
        elif kind == "end":
            s, n = payload
            n.free_cpu += s.cpu
            n.free_mem += s.memory_gib
            n.free_gpu += s.gpu
            n.running -= 1
            if n.running == 0:
                n.empty_since = now
            done_steps += 1
            last_end = max(last_end, now)
            idx = order[s.run].index(s.stage)
            left[(s.run, idx)] -= 1
            if left[(s.run, idx)] == 0 and idx + 1 < len(order[s.run]):
                release_stage(s.run, idx + 1, now)
            schedule(now)
        elif kind == "tick":
            st = state(now)
            series.append((now, {g.name: live(g) for g in config.groups}, len(queue)))
            for d in decide(config, st, memory):
                if d.action == "none":
                    continue
                g = config.group(d.group)
                if d.action == "scale_up":
                    for _ in range(d.count):
                        add_node(g, now, now + config.boot_s)
                    ups += 1
                else:
                    gone = 0
                    for name in d.nodes:
                        for n in nodes:
                            if n.name == name and n.removed is None and n.running == 0:
                                n.removed = now
                                gone += 1
                    if not gone:
                        continue
                    downs += 1
                memory.done(d, now)
                result_events.append(
                    {"t_s": round(now - t0, 1), "group": d.group, "action": d.action,
                     "count": d.count, "why": d.why}
                )  # fmt: skip
            finished = done_steps == total
            if queue and not any(n.running for n in nodes) and now - last_end > STALL_S:
                raise TraceError(
                    f"{len(queue)} step(s) waited {STALL_S / 3600:g} h with nothing running: "
                    "the cluster cannot grow (max_nodes or budget)"
                )
            if finished and (settled() or now - last_end >= SETTLE_S):
                end_time = now
                break
            push(now + config.interval_s, 2, "tick", None)
            if not finished:
                schedule(now)
    hours: dict[str, float] = {g.name: 0.0 for g in config.groups}
    maxima: dict[str, int] = {g.name: 0 for g in config.groups}
    for n in nodes:
        hours[n.group.name] += (
            (n.removed if n.removed is not None else end_time) - n.created
        ) / 3600
    for _, counts, _ in series:
        for k, v in counts.items():
            maxima[k] = max(maxima[k], v)
    return SimResult(
        policy=config.policy,
        steps=total,
        runs=len(stages),
        wait_p50_s=percentile(waits, 50),
        wait_p95_s=percentile(waits, 95),
        wait_max_s=max(waits, default=0.0),
        makespan_s=last_end - t0,
        node_hours=hours,
        cost=sum(hours[g.name] * g.cost_per_hour for g in config.groups),
        scale_ups=ups,
        scale_downs=downs,
        nodes_max=maxima,
        events=result_events,
        series=[(t - t0, c, q) for t, c, q in series],
    )
