"""What a policy sees of the cluster, the two policies, and their decisions.

Both policies are pure functions of (configuration, cluster state, memory of past actions); the
caller acts on the decisions (or, plan only, records them) and updates the memory.

* ``threshold`` – a group's load (the mean of its ready nodes' load, 0..1) at or above
  ``scale_up_at`` adds ``step`` nodes unless one is still booting; below ``scale_down_below``
  an empty node is removed. A group without ready nodes but with waiting pods counts as fully
  loaded (otherwise it could never leave zero).
* ``demand`` – the waiting (unschedulable) pods are bin-packed first-fit-decreasing onto the free
  room of the nodes still booting, then onto new nodes of the group's shape: that many nodes are
  added at once. Nodes empty for ``demand.idle_s`` are removed, all at once, while nothing waits
  for the group.

Common rules: min/max nodes per group, cooldowns (``scale_up_cooldown_s`` after a scale-up of the
group, ``scale_down_cooldown_s`` after any of its changes), the budget cap (summed
``cost_per_hour`` of all nodes, booting ones included), a back-off after a failed scale-up, and no
scale-down when the load figures are older than ``metrics_max_age_s`` (missing data).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from candela.scaling.config import NodeGroup, ScalingConfig

Action = Literal["scale_up", "scale_down", "none"]


@dataclass(frozen=True)
class Pod:
    """A pod (or queued task) and what it requests."""

    name: str
    cpu: float
    memory_gib: float
    gpu: int = 0


@dataclass(frozen=True)
class Node:
    name: str
    group: str
    ready: bool
    cpu: float
    memory_gib: float
    gpus: int = 0
    requested_cpu: float = 0.0
    requested_memory_gib: float = 0.0
    requested_gpu: int = 0
    pods: int = 0
    load: float | None = None  # measured load 0..1 (None: no figure; requests are used)
    empty_since: float | None = None  # when its last pod left (None: not empty)
    cordoned: bool = False

    @property
    def utilisation(self) -> float:
        if self.load is not None:
            return self.load
        parts = [self.requested_cpu / self.cpu, self.requested_memory_gib / self.memory_gib]
        if self.gpus:
            parts.append(self.requested_gpu / self.gpus)
        return max(parts)


@dataclass(frozen=True)
class ClusterState:
    now: float  # seconds (epoch or simulated)
    nodes: list[Node]
    waiting: list[Pod]  # pods that cannot be scheduled now, and tasks queued for them
    metrics_at: float | None = None  # when the load figures were taken (None: never)

    def inputs(self, group: str) -> dict[str, Any]:
        mine = [n for n in self.nodes if n.group == group]
        ready = [n for n in mine if n.ready]
        return {
            "nodes_ready": len(ready),
            "nodes_booting": len(mine) - len(ready),
            "load": round(_mean([n.utilisation for n in ready]), 3) if ready else None,
            "metrics_age_s": None if self.metrics_at is None else round(self.now - self.metrics_at),
        }


@dataclass(frozen=True)
class Decision:
    group: str
    action: Action
    count: int
    why: str
    nodes: tuple[str, ...] = ()  # the nodes to remove (scale_down)
    inputs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nodes"] = list(self.nodes)
        return d


@dataclass
class Memory:
    """What a policy remembers between passes, per group: the last scale-up, the last change,
    and a back-off after a failure."""

    last_up: dict[str, float] = field(default_factory=dict)
    last_change: dict[str, float] = field(default_factory=dict)
    backoff_until: dict[str, float] = field(default_factory=dict)

    def done(self, decision: Decision, at: float) -> None:
        if decision.action == "none" or decision.count == 0:
            return
        self.last_change[decision.group] = at
        if decision.action == "scale_up":
            self.last_up[decision.group] = at

    def failed(self, group: str, at: float, backoff_s: float) -> None:
        self.backoff_until[group] = at + backoff_s


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _waiting_for(config: ScalingConfig, state: ClusterState) -> dict[str, list[Pod]]:
    out: dict[str, list[Pod]] = {g.name: [] for g in config.groups}
    for pod in state.waiting:
        g = config.group_for(pod.gpu)
        if g is not None:
            out[g.name].append(pod)
    return out


def _fits(g: NodeGroup, pod: Pod) -> bool:
    return pod.cpu <= g.cpu and pod.memory_gib <= g.memory_gib and pod.gpu <= g.gpus


def nodes_needed(g: NodeGroup, pods: list[Pod], booting: list[Node]) -> tuple[int, list[Pod]]:
    """New nodes of ``g`` for ``pods`` after filling the free room of ``booting`` nodes
    (first-fit decreasing); also the pods no node of ``g`` can hold."""
    bins = [
        [n.cpu - n.requested_cpu, n.memory_gib - n.requested_memory_gib, n.gpus - n.requested_gpu]
        for n in booting
    ]
    fresh = len(bins)
    too_big = []
    for pod in sorted(pods, key=lambda p: (p.gpu, p.cpu, p.memory_gib), reverse=True):
        if not _fits(g, pod):
            too_big.append(pod)
            continue
        for b in bins:
            if pod.cpu <= b[0] + 1e-9 and pod.memory_gib <= b[1] + 1e-9 and pod.gpu <= b[2]:
                b[0] -= pod.cpu
                b[1] -= pod.memory_gib
                b[2] -= pod.gpu
                break
        else:
            bins.append([g.cpu - pod.cpu, g.memory_gib - pod.memory_gib, g.gpus - pod.gpu])
    return len(bins) - fresh, too_big


def _cost(config: ScalingConfig, state: ClusterState) -> float:
    total = 0.0
    for n in state.nodes:
        try:
            total += config.group(n.group).cost_per_hour
        except KeyError:
            pass
    return total


def _limit_up(
    config: ScalingConfig, g: NodeGroup, state: ClusterState, spent: float, want: int
) -> tuple[int, str]:
    """``want`` clipped by max_nodes and the budget; the reason when clipped."""
    have = sum(1 for n in state.nodes if n.group == g.name)
    n = min(want, g.max_nodes - have)
    why = ""
    if n < want:
        why = f"max_nodes {g.max_nodes} reached"
    if config.budget_per_hour is not None and g.cost_per_hour > 0:
        affordable = int((config.budget_per_hour - spent + 1e-9) // g.cost_per_hour)
        if affordable < n:
            n = max(affordable, 0)
            why = f"budget {config.budget_per_hour}/h reached (spending {spent:g}/h)"
    return max(n, 0), why


def decide(config: ScalingConfig, state: ClusterState, memory: Memory) -> list[Decision]:
    """One decision per group (``none`` with its reason when nothing is to be done)."""
    waiting = _waiting_for(config, state)
    spent = _cost(config, state)
    out = []
    for g in config.groups:
        d = _decide_group(config, g, state, memory, waiting[g.name], spent)
        if d.action == "scale_up":
            spent += d.count * g.cost_per_hour
        out.append(d)
    return out


def _decide_group(
    config: ScalingConfig,
    g: NodeGroup,
    state: ClusterState,
    memory: Memory,
    waiting: list[Pod],
    spent: float,
) -> Decision:
    now = state.now
    mine = [n for n in state.nodes if n.group == g.name]
    ready = [n for n in mine if n.ready]
    booting = [n for n in mine if not n.ready]
    inputs = state.inputs(g.name) | {
        "waiting_pods": len(waiting),
        "waiting_cpu": round(sum(p.cpu for p in waiting), 2),
        "waiting_gpu": sum(p.gpu for p in waiting),
        "policy": config.policy,
    }

    def none(why: str) -> Decision:
        return Decision(g.name, "none", 0, why, inputs=inputs)

    # below the minimum: bring it up whatever the policy
    if len(mine) < g.min_nodes:
        n, clipped = _limit_up(config, g, state, spent, g.min_nodes - len(mine))
        if n:
            return Decision(g.name, "scale_up", n, f"below min_nodes {g.min_nodes}", (), inputs)
        return none(f"below min_nodes {g.min_nodes} but {clipped}")

    up_why, want = "", 0
    if config.policy == "demand":
        if waiting:
            want, too_big = nodes_needed(g, waiting, booting)
            if too_big:
                inputs["too_big_for_group"] = [p.name for p in too_big][:10]
            if want:
                up_why = (
                    f"{len(waiting)} pod(s) waiting need {want} more node(s) "
                    f"({len(booting)} booting counted)"
                )
    else:
        load = _mean([n.utilisation for n in ready]) if ready else (1.0 if waiting else 0.0)
        if load >= config.threshold.scale_up_at and not booting:
            want = config.threshold.step
            up_why = f"load {load:.2f} >= scale_up_at {config.threshold.scale_up_at}"

    if want:
        if now < memory.backoff_until.get(g.name, float("-inf")):
            return none(f"{up_why}; backing off after a failure")
        if now - memory.last_up.get(g.name, float("-inf")) < config.scale_up_cooldown_s:
            return none(f"{up_why}; scale-up cooldown")
        n, clipped = _limit_up(config, g, state, spent, want)
        if n:
            why = up_why + (f"; {n} of {want} ({clipped})" if n < want else "")
            return Decision(g.name, "scale_up", n, why, (), inputs)
        return none(f"{up_why}; {clipped}")

    # scale-down
    if len(mine) <= g.min_nodes:
        return none("at min_nodes")
    if waiting:
        return none("pods waiting: no scale-down")
    if state.metrics_at is None or now - state.metrics_at > config.metrics_max_age_s:
        return none("load figures missing or stale: no scale-down")
    if now - memory.last_change.get(g.name, float("-inf")) < config.scale_down_cooldown_s:
        return none("scale-down cooldown")
    empty = [n for n in ready if n.pods == 0 and n.empty_since is not None and not n.cordoned]
    empty.sort(key=lambda n: (n.empty_since, n.name))
    room = len(mine) - g.min_nodes
    if config.policy == "demand":
        idle = [n for n in empty if now - (n.empty_since or 0.0) >= config.demand.idle_s]
        victims = idle[:room]
        if victims:
            names = tuple(n.name for n in victims)
            why = f"{len(victims)} node(s) empty for >= {config.demand.idle_s:g} s"
            return Decision(g.name, "scale_down", len(victims), why, names, inputs)
        return none("no node idle long enough")
    load = _mean([n.utilisation for n in ready])
    if load < config.threshold.scale_down_below and empty and not booting:
        victim = empty[-1]  # the most recently emptied
        why = f"load {load:.2f} < scale_down_below {config.threshold.scale_down_below}"
        return Decision(g.name, "scale_down", 1, why, (victim.name,), inputs)
    return none(f"load {load:.2f} within thresholds" if ready else "no ready node")
