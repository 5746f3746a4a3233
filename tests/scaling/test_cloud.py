"""Full scale-up and scale-down cycles through openstacksdk and the official kubernetes client,
against fakes of Keystone v3, Nova, Glance and the Kubernetes API (tests/scaling/fakes.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from candela.scaling.autoscaler import run_pass
from candela.scaling.cloud import GPU_TAINT_KEY, GROUP_LABEL, Actuator, CloudError, Kube, OpenStack
from candela.scaling.config import default_config, parse_config
from candela.scaling.policy import Memory

from . import fakes

# openstacksdk announces its own future removals at every call: not ours to act on
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")


@pytest.fixture
def cloud() -> Iterator[tuple[fakes.FakeCloud, str, str]]:
    c = fakes.FakeCloud(
        flavors={"f": {"id": "f-gpu", "name": "eo.gpu", "vcpus": 8, "ram": 65536, "disk": 80},
                 "c": {"id": "f-cpu", "name": "eo.large", "vcpus": 8, "ram": 32768, "disk": 40}},
        images={"k3s-node": "img-1"},
        networks={"net-1"},
    )  # fmt: skip
    c.secrets[("kube-system", "candela-join")] = {"token": "K10join::secret"}
    c.add_node("master", labels={})
    c.add_node("candela-cpu-0", labels={GROUP_LABEL: "cpu"})
    os_srv, os_url = fakes.serve(fakes.OpenStackHandler, c)
    k_srv, k_url = fakes.serve(fakes.KubernetesHandler, c)
    yield c, os_url, k_url
    os_srv.shutdown()
    k_srv.shutdown()


def _config(**kw):
    data = default_config().model_dump()
    for g in data["groups"]:
        g.update(flavor="eo.gpu" if g["gpu"] else "eo.large", image="k3s-node", network="net-1")
    data["provision"].update(poll_s=0.01, drain_timeout_s=0.3, join_server="https://10.0.0.1:6443")
    data.update({"active_timeout_s": 2, "ready_timeout_s": 0.5} | kw)
    return parse_config(data)


def _actuator(os_url: str, k_url: str, password: str = fakes.PASSWORD, **kw) -> Actuator:
    conn = OpenStack.connect(
        auth_type="password",
        auth={"auth_url": f"{os_url}/identity/v3", "username": fakes.USER, "password": password,
              "project_name": fakes.PROJECT, "user_domain_name": "Default",
              "project_domain_name": "Default"},
        region_name="RegionOne",
    )  # fmt: skip
    conf = k8s.Configuration(host=k_url)
    conf.api_key = {"authorization": "Bearer k8s-token"}
    api = k8s.ApiClient(conf)
    kube = Kube(k8s.CoreV1Api(api), k8s.CustomObjectsApi(api))
    return Actuator(_config(**kw), conn, kube, sleep=lambda s: None)


def test_scale_up_cycle_gpu_nodes(cloud):
    c, os_url, k_url = cloud
    act = _actuator(os_url, k_url)
    out = act.scale_up(act.config.group("gpu"), 2)
    assert [o["outcome"] for o in out] == ["ready", "ready"]
    assert len(c.servers) == 2
    for o in out:
        server = c.servers[o["server"]]
        assert server.name == o["node"] and server.flavor == "f-gpu" and server.image == "img-1"
        assert server.networks == ["net-1"]
        assert server.metadata == {"candela-node-group": "gpu"}
        # cloud-init joins with the token from the Secret, under the server's name
        assert "K3S_TOKEN=K10join::secret" in server.user_data
        assert f"--node-name {o['node']}" in server.user_data
        node = c.nodes[o["node"]]
        assert node["metadata"]["labels"][GROUP_LABEL] == "gpu"
        assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
        assert node["spec"]["taints"] == [
            {"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}
        ]
    # a CPU node gets no taint
    cpu = act.scale_up(act.config.group("cpu"), 1)[0]
    assert "taints" not in c.nodes[cpu["node"]]["spec"]


def test_scale_down_cycle_honours_disruption_budgets(cloud):
    c, os_url, k_url = cloud
    act = _actuator(os_url, k_url)
    name = act.scale_up(act.config.group("cpu"), 1)[0]["node"]
    c.add_pod("eo", "web-1", name)
    c.add_pod("eo", "db-0", name)
    c.add_pod("kube-system", "agent-x", name, owner="DaemonSet")
    c.pdb_refusals[("eo", "db-0")] = 3  # the budget allows it on the 4th try
    out = act.scale_down(act.config.group("cpu"), (name,))
    assert out == [{"node": name, "server": out[0]["server"], "outcome": "removed", "evicted": 2}]
    assert sorted(c.evicted) == [("eo", "db-0"), ("eo", "web-1")]
    assert ("kube-system", "agent-x") in c.pods  # DaemonSet pods stay
    assert name in c.deleted and name not in c.nodes and not c.servers
    assert ("PATCH", f"/api/v1/nodes/{name}") in c.requests  # cordoned first


def test_drain_blocked_keeps_the_node(cloud):
    c, os_url, k_url = cloud
    act = _actuator(os_url, k_url)
    name = act.scale_up(act.config.group("cpu"), 1)[0]["node"]
    c.add_pod("eo", "db-0", name)
    c.pdb_refusals[("eo", "db-0")] = 10**6
    out = act.scale_down(act.config.group("cpu"), (name,))
    assert out[0]["outcome"] == "kept" and "disruption budgets kept eo/db-0" in out[0]["error"]
    assert c.nodes[name]["spec"]["unschedulable"] is False  # uncordoned again
    assert len(c.servers) == 1


def test_node_never_ready_deletes_the_vm(cloud):
    c, os_url, k_url = cloud
    c.node_becomes_ready = False
    act = _actuator(os_url, k_url)
    out = act.scale_up(act.config.group("gpu"), 1)
    assert out[0]["outcome"] == "failed" and "not Ready within" in out[0]["error"]
    assert not c.servers and c.deleted == [out[0]["node"]]
    assert out[0]["node"] not in c.nodes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password": "wrong"}, "OpenStack: group gpu"),
        ({"flavor": "eo.huge"}, "unknown flavor 'eo.huge'"),
        ({"image": "nope"}, "unknown image 'nope'"),
        ({"network": "net-404"}, "Network net-404 could not be found"),
    ],
)
def test_cloud_refusals_create_nothing(cloud, change, message):
    c, os_url, k_url = cloud
    act = _actuator(os_url, k_url, password=change.pop("password", fakes.PASSWORD))
    group = act.config.group("gpu").model_copy(update=change)
    with pytest.raises(CloudError, match=message):
        act.scale_up(group, 1)
    assert not c.servers and not c.deleted


def test_autoscaler_pass_drives_the_fakes_and_backs_off(cloud):
    c, os_url, k_url = cloud
    act = _actuator(os_url, k_url)
    for i in range(3):  # three GPU pods nobody can schedule
        c.add_pod("candela", f"detect-{i}", None, cpu="2", memory="4Gi", gpu=1)
    empty: dict[str, float] = {}
    memory = Memory()
    state = act.kube.observe(act.config, 1000.0, empty)
    assert len(state.waiting) == 3 and [n.name for n in state.nodes] == ["candela-cpu-0"]
    rows = {r["group"]: r for r in run_pass(act.config, state, memory, act)}
    assert rows["gpu"]["action"] == "scale_up" and rows["gpu"]["count"] == 3
    assert rows["gpu"]["outcome"] == "done" and len(c.servers) == 3
    assert rows["cpu"]["outcome"] == "none"
    # the pods ran and left: the GPU nodes are empty (a DaemonSet pod does not count); later
    # passes remove them
    for i, server in enumerate(list(c.servers.values())):
        del c.pods[("candela", f"detect-{i}")]
        c.add_pod("kube-system", f"proxy-{i}", server.name, cpu="100m", owner="DaemonSet")
    act.kube.observe(act.config, 2000.0, empty)
    state = act.kube.observe(act.config, 2000.0 + act.config.demand.idle_s, empty)
    rows = {r["group"]: r for r in run_pass(act.config, state, memory, act)}
    assert rows["gpu"]["action"] == "scale_down" and rows["gpu"]["outcome"] == "done"
    assert not c.servers and len(c.deleted) == 3
    assert not c.evicted  # only DaemonSet pods were left: nothing to evict
    # the cloud refuses: an error row, a back-off, the pass does not raise
    c.images.clear()
    c.add_pod("candela", "detect-9", None, cpu="2", memory="4Gi", gpu=1)
    state = act.kube.observe(act.config, 5000.0, empty)
    rows = {r["group"]: r for r in run_pass(act.config, state, memory, act)}
    assert (
        rows["gpu"]["outcome"] == "error" and "unknown image" in rows["gpu"]["detail"][0]["error"]
    )
    assert memory.backoff_until["gpu"] == 5000.0 + act.config.backoff_s


def test_plan_only_creates_nothing(cloud):
    c, os_url, k_url = cloud
    act = _actuator(os_url, k_url)
    c.add_pod("candela", "detect-0", None, cpu="2", memory="4Gi", gpu=1)
    state = act.kube.observe(act.config, 1000.0, {})
    rows = {r["group"]: r for r in run_pass(act.config, state, Memory(), None)}
    assert rows["gpu"]["outcome"] == "planned" and rows["gpu"]["mode"] == "plan"
    assert not c.servers


def test_server_never_active_is_deleted(cloud):
    c, os_url, k_url = cloud
    c.polls_to_active = 10**6
    act = _actuator(os_url, k_url, active_timeout_s=0.3)
    out = act.scale_up(act.config.group("cpu"), 1)
    assert out[0]["outcome"] == "failed" and "not ACTIVE within" in out[0]["error"]
    assert not c.servers and len(c.deleted) == 1


def test_instance_quota_gives_a_partial_scale_up(cloud):
    c, os_url, k_url = cloud
    c.max_servers = 1
    act = _actuator(os_url, k_url)
    out = act.scale_up(act.config.group("cpu"), 3)
    assert [o["outcome"] for o in out] == ["failed", "ready"]
    assert "Quota exceeded for instances" in out[0]["error"]
    assert len(c.servers) == 1
    with pytest.raises(CloudError, match="Quota exceeded"):  # nothing made: refused outright
        act.scale_up(act.config.group("cpu"), 1)


def test_metrics_api_load_and_missing_metrics(cloud):
    c, os_url, k_url = cloud
    act = _actuator(os_url, k_url)
    c.add_node("candela-cpu-1", labels={GROUP_LABEL: "cpu"})  # empty: could be removed
    c.node_metrics = {"candela-cpu-0": ("6", "8Gi"), "candela-cpu-1": ("100m", "1Gi")}
    empty = {"candela-cpu-1": 0.0}
    state = act.kube.observe(act.config, 1000.0, empty)
    loads = {n.name: n.load for n in state.nodes}
    assert loads["candela-cpu-0"] == pytest.approx(0.75) and state.metrics_at == 1000.0
    rows = {r["group"]: r for r in run_pass(act.config, state, Memory(), None)}
    assert rows["cpu"]["action"] == "scale_down" and rows["cpu"]["nodes"] == ["candela-cpu-1"]
    # metrics-server down: no load figures, so no scale-down this pass
    c.metrics_api = "down"
    state = act.kube.observe(act.config, 1030.0, empty)
    assert state.metrics_at is None and all(n.load is None for n in state.nodes)
    rows = {r["group"]: r for r in run_pass(act.config, state, Memory(), None)}
    assert rows["cpu"]["action"] == "none" and "missing or stale" in rows["cpu"]["why"]
    # no metrics API at all: the requests stand in
    c.metrics_api = "absent"
    state = act.kube.observe(act.config, 1060.0, empty)
    assert state.metrics_at == 1060.0
