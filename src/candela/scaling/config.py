"""The scaling configuration: node groups (CPU, GPU) with their bounds, the policy and its
parameters, cooldowns and a budget cap; refused at load with the field named.

Read from a TOML or JSON file (``CANDELA_SCALING_CONFIG``), or :func:`default_config`.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PolicyName = Literal["threshold", "demand"]


class ConfigError(ValueError):
    """An inconsistent scaling configuration; the message names the field."""


class NodeGroup(BaseModel):
    """Identical nodes created from one flavor and image; ``gpu`` groups take only GPU pods
    (their nodes are labelled and tainted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    gpu: bool = False
    min_nodes: int = Field(0, ge=0)
    max_nodes: int = Field(1, ge=0)
    cpu: float = Field(8, gt=0, description="allocatable cores of one node")
    memory_gib: float = Field(32, gt=0, description="allocatable memory of one node")
    gpus: int = Field(0, ge=0, description="GPUs of one node")
    cost_per_hour: float = Field(1.0, ge=0, description="price of one node-hour (budget unit)")
    flavor: str = ""
    image: str = ""
    network: str = ""
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> NodeGroup:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) > max_nodes ({self.max_nodes})")
        if self.gpu and self.gpus < 1:
            raise ValueError("gpus must be >= 1 in a gpu group")
        if not self.gpu and self.gpus:
            raise ValueError("gpus must be 0 in a CPU group (set gpu = true)")
        return self


class ThresholdParams(BaseModel):
    """The classic rule: add ``step`` nodes when a group's load reaches ``scale_up_at``, remove
    an empty node when it falls below ``scale_down_below``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale_up_at: float = Field(0.8, gt=0, le=1)
    scale_down_below: float = Field(0.3, ge=0, lt=1)
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdParams:
        if self.scale_down_below >= self.scale_up_at:
            raise ValueError(
                f"scale_down_below ({self.scale_down_below}) must be < scale_up_at "
                f"({self.scale_up_at})"
            )
        return self


class DemandParams(BaseModel):
    """Scale on demand: as many nodes as the waiting pods need (bin-packed on the group's node
    shape, counting nodes already booting); remove nodes empty for ``idle_s``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_s: float = Field(
        120, ge=0, description="a node empty this long may be removed (tuned: docs/benchmarks)"
    )


class ProvisionConfig(BaseModel):
    """How new nodes are made: the OpenStack cloud and how a VM joins the cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cloud: str | None = Field(None, description="clouds.yaml entry (None: the OS_* variables)")
    join: Literal["k3s", "kubeadm"] = "k3s"
    join_server: str = Field("", description="the API server a new node joins (https://…:6443)")
    join_secret: str = Field("candela-join", description="Secret with keys token (+ ca-cert-hash)")
    join_secret_namespace: str = "kube-system"
    name_prefix: str = Field("candela", pattern=r"^[a-z][a-z0-9-]{0,20}$")
    drain_timeout_s: float = Field(300, gt=0, description="PodDisruptionBudgets: give up after")
    poll_s: float = Field(5, gt=0)


class ScalingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: PolicyName = "demand"
    groups: list[NodeGroup] = Field(min_length=1)
    interval_s: float = Field(30, gt=0, description="seconds between two passes")
    scale_up_cooldown_s: float = Field(60, ge=0)
    scale_down_cooldown_s: float = Field(300, ge=0)
    budget_per_hour: float | None = Field(
        None, ge=0, description="cap on the summed cost_per_hour of all nodes (None: no cap)"
    )
    boot_s: float = Field(240, gt=0, description="expected VM boot + join (simulator)")
    active_timeout_s: float = Field(600, gt=0, description="server ACTIVE within this")
    ready_timeout_s: float = Field(600, gt=0, description="node Ready within this")
    backoff_s: float = Field(300, ge=0, description="no scale-up of a group after a failure")
    metrics_max_age_s: float = Field(
        120, gt=0, description="older load figures: no scale-down (missing data)"
    )
    threshold: ThresholdParams = Field(default_factory=ThresholdParams)
    demand: DemandParams = Field(default_factory=DemandParams)
    provision: ProvisionConfig = Field(default_factory=ProvisionConfig)

    @model_validator(mode="after")
    def _groups(self) -> ScalingConfig:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"groups: duplicate names {names}")
        return self

    def group(self, name: str) -> NodeGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def group_for(self, gpu: int) -> NodeGroup | None:
        """The group a pod goes to: GPU pods to the first GPU group, others to the first CPU
        group."""
        for g in self.groups:
            if g.gpu == (gpu > 0):
                return g
        return None

    def with_policy(self, policy: PolicyName) -> ScalingConfig:
        return self.model_copy(update={"policy": policy})


def default_config() -> ScalingConfig:
    """A CPU group (8 cores, 32 GiB) of 1 to 20 nodes and a GPU group (8 cores, 64 GiB, one
    GPU) of 0 to 8, a GPU node costing four CPU nodes."""
    return ScalingConfig(
        groups=[
            NodeGroup(name="cpu", min_nodes=1, max_nodes=20, cpu=8, memory_gib=32),
            NodeGroup(
                name="gpu",
                gpu=True,
                min_nodes=0,
                max_nodes=8,
                cpu=8,
                memory_gib=64,
                gpus=1,
                cost_per_hour=4.0,
                labels={"nvidia.com/gpu.present": "true"},
            ),
        ],
        budget_per_hour=60,
    )


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "config"


def parse_config(data: Any) -> ScalingConfig:
    """:class:`ScalingConfig` from plain data; :class:`ConfigError` naming each bad field."""
    try:
        return ScalingConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{_where(err['loc'])}: {msg}")
        raise ConfigError("invalid scaling configuration: " + "; ".join(lines)) from None


def load_config(path: Path | str | None) -> ScalingConfig:
    """The configuration in ``path`` (``.toml`` or ``.json``); :func:`default_config` for
    ``None``."""
    if path is None:
        return default_config()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the scaling configuration {p}: {exc.strerror}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{p}: not valid {p.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    return parse_config(data)


_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3,
}  # fmt: skip


def parse_quantity(text: str | int | float, memory: bool = False) -> float:
    """A Kubernetes quantity as a number: cores (``"500m"`` → 0.5) or, with ``memory``, GiB
    (``"512Mi"`` → 0.5)."""
    s = str(text).strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if s.endswith(suffix):
            value = float(s[: -len(suffix)]) * _SUFFIX[suffix]
            break
    else:
        value = float(s)
    return value / 2**30 if memory else value
