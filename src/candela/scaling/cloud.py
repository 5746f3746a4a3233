"""The actuators: OpenStack servers through openstacksdk, the Kubernetes cluster through the
official ``kubernetes`` client.

Scale-up of a group: read the join token from its Secret, resolve the group's flavor and image,
create the servers (cloud-init user data that joins the cluster with k3s or kubeadm, the node
named as the server and labelled with its group), wait for ACTIVE, wait for the node to be Ready,
then label it and, in a GPU group, taint it (only GPU pods tolerate the taint). A VM that errors,
does not become ACTIVE or whose node never becomes Ready is deleted (and its node object too):
:class:`ProvisionFailed`, counted by the caller, which backs off.

Scale-down of a node: cordon, drain through the Eviction API (a PodDisruptionBudget refusal, 429,
is retried until ``drain_timeout_s``; then the node is uncordoned and kept), delete the server,
delete the node object. DaemonSet pods and mirror pods are left to die with the node.

The cloud refusing (wrong credentials, unknown flavor/image/network, quota) is a
:class:`CloudError`: the caller records it and keeps running without scaling.
"""

from __future__ import annotations

import base64
import logging
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from candela.scaling.config import NodeGroup, ProvisionConfig, ScalingConfig, parse_quantity
from candela.scaling.policy import ClusterState, Node, Pod

log = logging.getLogger(__name__)

GROUP_LABEL = "candela.io/node-group"
GPU_TAINT_KEY = "nvidia.com/gpu"
META_GROUP = "candela-node-group"


class CloudError(RuntimeError):
    """The cloud or the cluster refuses (credentials, unknown flavor/image/network, quota)."""


class ProvisionFailed(RuntimeError):
    """A new node did not become usable; its VM was deleted."""


class DrainBlocked(RuntimeError):
    """Pods could not be evicted in time (PodDisruptionBudgets); the node was kept."""


# -- cloud-init ------------------------------------------------------------------------------


def user_data(
    p: ProvisionConfig, group: NodeGroup, node: str, token: str, ca_hash: str = ""
) -> str:
    """cloud-init that joins the VM to the cluster as node ``node`` of ``group``."""
    labels = {GROUP_LABEL: group.name, **group.labels}
    label_text = ",".join(f"{k}={v}" for k, v in labels.items())
    if p.join == "k3s":
        args = ["agent", "--node-name", node]
        for k, v in labels.items():
            args += ["--node-label", f"{k}={v}"]
        if group.gpu:
            args += ["--node-taint", f"{GPU_TAINT_KEY}=present:NoSchedule"]
        cmd = (
            f"curl -sfL https://get.k3s.io | K3S_URL={shlex.quote(p.join_server)} "
            f"K3S_TOKEN={shlex.quote(token)} sh -s - {shlex.join(args)}"
        )
    else:
        server = p.join_server.removeprefix("https://")
        cmd = (
            f"kubeadm join {shlex.quote(server)} --token {shlex.quote(token)} "
            f"--discovery-token-ca-cert-hash {shlex.quote(ca_hash)} --node-name {shlex.quote(node)}"
        )
        cmd += f" && echo 'KUBELET_EXTRA_ARGS=--node-labels={label_text}' > /etc/default/kubelet"
    return "\n".join(
        [
            "#cloud-config",
            f"hostname: {node}",
            "runcmd:",
            f"  - [ sh, -c, {_yaml_str(cmd)} ]",
            "",
        ]
    )


def _yaml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- OpenStack -------------------------------------------------------------------------------


def _refusals() -> tuple[type[Exception], ...]:
    """What openstacksdk and keystoneauth raise when the cloud refuses."""
    from keystoneauth1.exceptions import ClientException
    from openstack import exceptions

    return (exceptions.SDKException, ClientException)


def _cloud_error(action: str, exc: Exception) -> CloudError:
    msg = str(getattr(exc, "details", None) or exc).strip() or type(exc).__name__
    return CloudError(f"OpenStack: {action}: {msg}")


class OpenStack:
    """The few Nova/Glance calls the autoscaler makes, through an openstacksdk connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    def connect(cls, cloud: str | None = None, **auth: Any) -> OpenStack:
        """openstacksdk from ``clouds.yaml`` (``cloud``), the ``OS_*`` variables or ``auth``."""
        import openstack

        try:
            if auth:
                conn = openstack.connection.Connection(**auth)
            else:
                conn = openstack.connect(cloud=cloud)
        except Exception as exc:
            raise _cloud_error("connect", exc) from None
        return cls(conn)

    def resolve(self, group: NodeGroup) -> tuple[str, str]:
        """The ids of the group's flavor and image; :class:`CloudError` naming what is unknown
        (wrong credentials surface here first)."""
        from openstack.exceptions import NotFoundException

        found = []
        for kind, name in (("flavor", group.flavor), ("image", group.image)):
            try:  # the first call authenticates: wrong credentials surface here
                proxy = self.conn.compute if kind == "flavor" else self.conn.image
                find = proxy.find_flavor if kind == "flavor" else proxy.find_image
                found.append(str(find(name, ignore_missing=False).id))
            except NotFoundException:
                raise CloudError(
                    f"OpenStack: group {group.name}: unknown {kind} {name!r}"
                ) from None
            except _refusals() as exc:
                raise _cloud_error(f"group {group.name}", exc) from None
        return found[0], found[1]

    def create(
        self, name: str, flavor: str, image: str, network: str, data: str, group: str
    ) -> str:
        try:
            server = self.conn.compute.create_server(
                name=name,
                flavor_id=flavor,
                image_id=image,
                networks=[{"uuid": network}] if network else "auto",
                user_data=base64.b64encode(data.encode()).decode(),
                metadata={META_GROUP: group},
            )
        except _refusals() as exc:
            raise _cloud_error(f"create server {name}", exc) from None
        return str(server.id)

    def wait_active(self, server_id: str, timeout: float, interval: float) -> None:
        from openstack import exceptions

        try:
            server = self.conn.compute.get_server(server_id)
            self.conn.compute.wait_for_server(
                server, status="ACTIVE", failures=["ERROR"], interval=interval, wait=timeout
            )
        except exceptions.ResourceTimeout:
            raise ProvisionFailed(f"server {server_id} not ACTIVE within {timeout:g} s") from None
        except exceptions.ResourceFailure as exc:
            raise ProvisionFailed(f"server {server_id} went to ERROR: {exc}") from None
        except _refusals() as exc:
            raise ProvisionFailed(f"server {server_id}: {exc}") from None

    def delete(self, server_id: str) -> None:
        self.conn.compute.delete_server(server_id, ignore_missing=True)

    def server_named(self, name: str) -> str | None:
        for s in self.conn.compute.servers(name=f"^{name}$"):
            if s.name == name:
                return str(s.id)
        return None


# -- Kubernetes ------------------------------------------------------------------------------


def _pod_requests(pod: Any) -> tuple[float, float, int]:
    cpu = mem = 0.0
    gpu = 0
    for c in pod.spec.containers or []:
        req = (c.resources and (c.resources.requests or c.resources.limits)) or {}
        cpu += parse_quantity(req.get("cpu", "0"))
        mem += parse_quantity(req.get("memory", "0"), memory=True)
        gpu += int(req.get("nvidia.com/gpu", 0))
    return cpu, mem, gpu


def _ready(node: Any) -> bool:
    for c in (node.status and node.status.conditions) or []:
        if c.type == "Ready":
            return bool(c.status == "True")
    return False


def _unschedulable(pod: Any) -> bool:
    for c in (pod.status and pod.status.conditions) or []:
        if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
            return True
    return False


def _evictable(pod: Any) -> bool:
    meta = pod.metadata
    if meta.annotations and "kubernetes.io/config.mirror" in meta.annotations:
        return False
    return not any(o.kind == "DaemonSet" for o in meta.owner_references or [])


class Kube:
    """The Kubernetes calls: nodes, pods, the join Secret, evictions."""

    def __init__(self, api: Any, custom: Any | None = None) -> None:
        self.api = api  # kubernetes.client.CoreV1Api
        self.custom = custom  # kubernetes.client.CustomObjectsApi (the metrics API)

    @classmethod
    def connect(cls, in_cluster: bool = False, config_file: str | None = None) -> Kube:
        from kubernetes import client, config

        if in_cluster:
            config.load_incluster_config()
        else:
            config.load_kube_config(config_file=config_file)
        return cls(client.CoreV1Api(), client.CustomObjectsApi())

    def node_usage(self) -> dict[str, tuple[float, float]] | None:
        """(cores, GiB) in use per node from the metrics API (metrics-server); ``{}`` when the
        cluster has no metrics API (404: requests stand in), ``None`` when it failed (missing
        data: no scale-down this pass)."""
        from kubernetes.client.exceptions import ApiException

        if self.custom is None:
            return {}
        try:
            res = self.custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
        except ApiException as exc:
            if exc.status == 404:
                return {}
            log.warning("metrics API: %s %s: no scale-down this pass", exc.status, exc.reason)
            return None
        except Exception as exc:
            log.warning("metrics API: %s: no scale-down this pass", exc)
            return None
        out = {}
        for item in res.get("items", []):
            usage = item.get("usage", {})
            out[item["metadata"]["name"]] = (
                parse_quantity(usage.get("cpu", "0")),
                parse_quantity(usage.get("memory", "0"), memory=True),
            )
        return out

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kw)
        except ApiException as exc:
            raise CloudError(f"Kubernetes: {what}: {exc.status} {exc.reason}") from None

    def join_secret(self, p: ProvisionConfig) -> tuple[str, str]:
        """(token, CA certificate hash) from the join Secret."""
        sec = self._call(
            f"join Secret {p.join_secret_namespace}/{p.join_secret}",
            self.api.read_namespaced_secret,
            p.join_secret,
            p.join_secret_namespace,
        )
        data = sec.data or {}
        if "token" not in data:
            raise CloudError(f"Kubernetes: Secret {p.join_secret} has no key 'token'")
        dec = {k: base64.b64decode(v).decode() for k, v in data.items()}
        return dec["token"], dec.get("ca-cert-hash", "")

    def node(self, name: str) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.read_node(name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise CloudError(f"Kubernetes: node {name}: {exc.status} {exc.reason}") from None

    def wait_ready(
        self, name: str, timeout: float, interval: float, sleep: Callable[[float], None]
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            node = self.node(name)
            if node is not None and _ready(node):
                return
            if time.monotonic() >= deadline:
                state = "never registered" if node is None else "not Ready"
                raise ProvisionFailed(f"node {name} {state} within {timeout:g} s")
            sleep(interval)

    def label_taint(self, name: str, group: NodeGroup) -> None:
        body: dict[str, Any] = {"metadata": {"labels": {GROUP_LABEL: group.name, **group.labels}}}
        if group.gpu:
            body["spec"] = {
                "taints": [{"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}]
            }
        self._call(f"label node {name}", self.api.patch_node, name, body)

    def cordon(self, name: str, on: bool = True) -> None:
        self._call(f"cordon {name}", self.api.patch_node, name, {"spec": {"unschedulable": on}})

    def pods_on(self, name: str) -> list[Any]:
        res = self._call(
            f"pods of {name}",
            self.api.list_pod_for_all_namespaces,
            field_selector=f"spec.nodeName={name}",
        )
        return [p for p in res.items if p.status.phase not in ("Succeeded", "Failed")]

    def drain(
        self, name: str, timeout: float, interval: float, sleep: Callable[[float], None]
    ) -> int:
        """Evict the node's pods through the Eviction API (honours PodDisruptionBudgets: a 429
        is retried until ``timeout``, then :class:`DrainBlocked`); the number evicted."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        deadline = time.monotonic() + timeout
        evicted = 0
        while True:
            pods = [p for p in self.pods_on(name) if _evictable(p)]
            if not pods:
                return evicted
            blocked = []
            for pod in pods:
                body = client.V1Eviction(
                    metadata=client.V1ObjectMeta(
                        name=pod.metadata.name, namespace=pod.metadata.namespace
                    )
                )
                try:
                    self.api.create_namespaced_pod_eviction(
                        pod.metadata.name, pod.metadata.namespace, body
                    )
                    evicted += 1
                except ApiException as exc:
                    if exc.status == 404:
                        continue  # gone already
                    if exc.status == 429:  # a PodDisruptionBudget says not now
                        blocked.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
                        continue
                    raise CloudError(
                        f"Kubernetes: evict {pod.metadata.name}: {exc.status}"
                    ) from None
            if blocked and time.monotonic() >= deadline:
                raise DrainBlocked(
                    f"node {name}: disruption budgets kept {', '.join(blocked)} for {timeout:g} s"
                )
            if blocked:
                sleep(interval)

    def delete_node(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise CloudError(f"Kubernetes: delete node {name}: {exc.status}") from None

    def observe(
        self, config: ScalingConfig, now: float, empty_since: dict[str, float]
    ) -> ClusterState:
        """Nodes of the managed groups (with the requests of their pods) and the pods that
        cannot be scheduled. ``empty_since`` (node → when it was first seen empty) is updated
        in place: the API does not say since when a node is empty."""
        names = {g.name for g in config.groups}
        measured = self.node_usage()
        nodes_raw = self._call("list nodes", self.api.list_node).items
        pods = self._call("list pods", self.api.list_pod_for_all_namespaces).items
        use: dict[str, list[float]] = {}
        waiting = []
        for p in pods:
            if p.status.phase in ("Succeeded", "Failed"):
                continue
            cpu, mem, gpu = _pod_requests(p)
            if p.spec.node_name:
                u = use.setdefault(p.spec.node_name, [0.0, 0.0, 0.0, 0.0])
                u[0] += cpu
                u[1] += mem
                u[2] += gpu
                # DaemonSet and mirror pods run on every node: they do not keep one busy
                u[3] += 1 if _evictable(p) else 0
            elif _unschedulable(p):
                waiting.append(Pod(f"{p.metadata.namespace}/{p.metadata.name}", cpu, mem, gpu))
        nodes = []
        for n in nodes_raw:
            group = (n.metadata.labels or {}).get(GROUP_LABEL)
            if group not in names:
                continue
            alloc = (n.status and n.status.allocatable) or {}
            u = use.get(n.metadata.name, [0.0, 0.0, 0.0, 0.0])
            cpu_alloc = parse_quantity(alloc.get("cpu", "1"))
            mem_alloc = parse_quantity(alloc.get("memory", "1Gi"), memory=True)
            load = None
            if measured and n.metadata.name in measured:
                used_cpu, used_mem = measured[n.metadata.name]
                load = min(1.0, max(used_cpu / cpu_alloc, used_mem / mem_alloc))
            if u[3] == 0:
                empty_since.setdefault(n.metadata.name, now)
            else:
                empty_since.pop(n.metadata.name, None)
            nodes.append(
                Node(
                    n.metadata.name,
                    group,
                    _ready(n),
                    cpu_alloc,
                    mem_alloc,
                    int(alloc.get("nvidia.com/gpu", 0)),
                    u[0],
                    u[1],
                    int(u[2]),
                    int(u[3]),
                    load,
                    empty_since.get(n.metadata.name),
                    bool(n.spec and n.spec.unschedulable),
                )
            )
        seen = {n.name for n in nodes}
        for gone in set(empty_since) - seen:
            del empty_since[gone]
        return ClusterState(now, nodes, waiting, None if measured is None else now)


# -- the actuator ----------------------------------------------------------------------------


@dataclass
class Actuator:
    """Carries out decisions on OpenStack + Kubernetes; each outcome is a dict to record."""

    config: ScalingConfig
    cloud: OpenStack
    kube: Kube
    sleep: Callable[[float], None] = time.sleep

    def scale_up(self, group: NodeGroup, count: int) -> list[dict[str, Any]]:
        """Create ``count`` nodes; outcomes per node (``ready`` or ``failed``, VM deleted).
        :class:`CloudError` when the cloud refuses before any VM exists."""
        p = self.config.provision
        token, ca_hash = self.kube.join_secret(p)
        flavor, image = self.cloud.resolve(group)
        made: list[tuple[str, str]] = []
        out: list[dict[str, Any]] = []
        for _ in range(count):
            name = f"{p.name_prefix}-{group.name}-{uuid.uuid4().hex[:8]}"
            data = user_data(p, group, name, token, ca_hash)
            try:
                sid = self.cloud.create(name, flavor, image, group.network, data, group.name)
            except CloudError as exc:
                if not made:
                    raise
                out.append({"node": name, "outcome": "failed", "error": str(exc)})
                break  # quota: the others will not fare better
            made.append((name, sid))
        for name, sid in made:
            try:
                self.cloud.wait_active(sid, self.config.active_timeout_s, p.poll_s)
                self.kube.wait_ready(name, self.config.ready_timeout_s, p.poll_s, self.sleep)
                self.kube.label_taint(name, group)
                out.append({"node": name, "server": sid, "outcome": "ready"})
                log.info("node %s of group %s is Ready", name, group.name)
            except (ProvisionFailed, CloudError) as exc:
                log.warning("scale-up of %s failed: %s; deleting the VM", name, exc)
                self.cloud.delete(sid)
                try:
                    self.kube.delete_node(name)
                except CloudError as exc2:
                    log.warning("could not delete node object %s: %s", name, exc2)
                out.append({"node": name, "server": sid, "outcome": "failed", "error": str(exc)})
        return out

    def scale_down(self, group: NodeGroup, nodes: tuple[str, ...]) -> list[dict[str, Any]]:
        p = self.config.provision
        out: list[dict[str, Any]] = []
        for name in nodes:
            self.kube.cordon(name)
            try:
                evicted = self.kube.drain(name, p.drain_timeout_s, p.poll_s, self.sleep)
            except DrainBlocked as exc:
                self.kube.cordon(name, on=False)
                out.append({"node": name, "outcome": "kept", "error": str(exc)})
                continue
            sid = self.cloud.server_named(name)
            if sid is not None:
                self.cloud.delete(sid)
            self.kube.delete_node(name)
            out.append({"node": name, "server": sid, "outcome": "removed", "evicted": evicted})
        return out
