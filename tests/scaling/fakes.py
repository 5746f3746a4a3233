"""Fakes of the OpenStack and Kubernetes HTTP APIs, for the tests only.

Written from the published API references (Identity v3 "Password authentication with scoped
authorization", Compute v2.1 servers and flavors, Image v2 images, Kubernetes core/v1 nodes, pods,
secrets and the policy/v1 Eviction subresource): the product code talks to them through
openstacksdk and the official ``kubernetes`` client exactly as to real ones. Served on loopback
free ports. One :class:`FakeCloud` holds both, because a server that boots in Nova joins the
Kubernetes cluster as a node of the same name (what the cloud-init user data does for real).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

USER, PASSWORD, PROJECT = "candela", "s3cret", "eo"
TOKEN = "gAAAAA-fake-keystone-token"


@dataclass
class Server:
    id: str
    name: str
    flavor: str
    image: str
    networks: list[str]
    user_data: str
    metadata: dict[str, str]
    polls: int = 0
    status: str = "BUILD"


@dataclass
class FakeCloud:
    """State of both fakes; knobs for the failure cases."""

    flavors: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # name → id
    networks: set[str] = field(default_factory=set)
    servers: dict[str, Server] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    polls_to_active: int = 2
    max_servers: int = 100  # Nova's instance quota: 403 beyond
    node_joins: bool = True  # the VM's kubelet registers a node
    node_becomes_ready: bool = True
    polls_to_ready: int = 2
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    node_polls: dict[str, int] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    node_metrics: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → cpu, memory
    metrics_api: str = "up"  # "up" | "down" (503) | "absent" (404)
    pdb_refusals: dict[tuple[str, str], int] = field(default_factory=dict)  # 429s before OK
    evicted: list[tuple[str, str]] = field(default_factory=list)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- Kubernetes objects --------------------------------------------------------------
    def add_node(self, name: str, ready: bool = True, labels: dict[str, str] | None = None) -> None:
        self.nodes[name] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels or {}, "uid": str(uuid.uuid4())},
            "spec": {},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True" if ready else "False", "reason": "Kubelet"}
                ],
                "allocatable": {"cpu": "8", "memory": "32Gi"},
                "capacity": {"cpu": "8", "memory": "32Gi"},
            },
        }

    def add_pod(
        self, ns: str, name: str, node: str | None, cpu: str = "1", memory: str = "1Gi",
        gpu: int = 0, owner: str = "ReplicaSet", phase: str | None = None,
    ) -> None:  # fmt: skip
        limits: dict[str, str] = {"cpu": cpu, "memory": memory}
        if gpu:
            limits["nvidia.com/gpu"] = str(gpu)
        status: dict[str, Any] = {"phase": phase or ("Running" if node else "Pending")}
        if node is None:
            status["conditions"] = [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
            ]
        self.pods[(ns, name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": owner,
                        "name": f"{name}-owner",
                        "uid": str(uuid.uuid4()),
                    }
                ],  # fmt: skip
            },
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c", "resources": {"requests": limits, "limits": limits}}],
            },
            "status": status,
        }


class _Handler(BaseHTTPRequestHandler):
    cloud: FakeCloud
    base: str

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else None

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.cloud.lock:
            self.cloud.requests.append((method, url.path))
            try:
                self.route(method, url.path.rstrip("/") or "/", query)
            except _Answer as a:
                self._send(a.status, a.body, a.headers)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def route(self, method: str, path: str, query: dict[str, str]) -> None:
        raise _Answer(404, {"error": f"no route {method} {path}"})


class _Answer(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers


def _nova_fault(status: int, message: str) -> _Answer:
    kind = {400: "badRequest", 403: "forbidden", 404: "itemNotFound"}.get(status, "computeFault")
    return _Answer(status, {kind: {"code": status, "message": message}})


class OpenStackHandler(_Handler):
    """Keystone v3 (``/identity``), Nova v2.1 (``/compute/v2.1``), Glance v2 (``/image``)."""

    def _authorised(self) -> None:
        if self.headers.get("X-Auth-Token") != TOKEN:
            raise _Answer(401, {"error": {"code": 401, "message": "The request you have made "
                                          "requires authentication.", "title": "Unauthorized"}})  # fmt: skip

    def route(self, method: str, path: str, query: dict[str, str]) -> None:
        b = self.base
        c = self.cloud
        if path == "/identity":
            raise _Answer(300, {"versions": {"values": [self._v3()]}})
        if path == "/identity/v3" and method == "GET":
            raise _Answer(200, {"version": self._v3()})
        if path == "/identity/v3/auth/tokens" and method == "POST":
            self._token(self._body())
        # compute
        if path == "/compute":
            raise _Answer(200, {"versions": [self._nova_version()]})
        if path == "/compute/v2.1" and method == "GET":
            raise _Answer(200, {"version": self._nova_version()})
        if path.startswith("/compute/v2.1/"):
            self._authorised()
            self._nova(method, path.removeprefix("/compute/v2.1"), query)
        if path == "/image":
            raise _Answer(
                300,
                {"versions": [{"id": "v2.16", "status": "CURRENT",
                               "links": [{"rel": "self", "href": f"{b}/image/v2/"}]}]},
            )  # fmt: skip
        if path == "/image/v2/images" and method == "GET":
            self._authorised()
            found = [
                {"id": i, "name": n, "status": "active", "visibility": "public"}
                for n, i in c.images.items()
                if query.get("name") in (None, n) and query.get("id") in (None, i)
            ]
            raise _Answer(200, {"images": found, "schema": "/v2/schemas/images"})
        m = re.fullmatch(r"/image/v2/images/([^/]+)", path)
        if m and method == "GET":
            self._authorised()
            for n, i in c.images.items():
                if i == m[1]:
                    raise _Answer(200, {"id": i, "name": n, "status": "active"})
            raise _Answer(404, {"message": "No image found"})
        raise _Answer(404, {"error": f"no route {method} {path}"})

    def _v3(self) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.base}/identity/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.identity-v3+json"}],
        }  # fmt: skip

    def _nova_version(self) -> dict[str, Any]:
        return {
            "id": "v2.1",
            "status": "CURRENT",
            "version": "2.79",
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self.base}/compute/v2.1/"}],
        }

    def _token(self, body: Any) -> None:
        try:
            pw = body["auth"]["identity"]["password"]["user"]
            ok = pw["name"] == USER and pw["password"] == PASSWORD
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise _Answer(401, {"error": {"code": 401, "title": "Unauthorized",
                                          "message": "The request you have made requires "
                                          "authentication."}})  # fmt: skip
        b = self.base
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime(
            "%Y-%m-%dT%H:%M:%S.000000Z"
        )
        catalog = [
            {"type": "identity", "name": "keystone", "id": "k",
             "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                            "url": f"{b}/identity", "id": "k1"}]},
            {"type": "compute", "name": "nova", "id": "n",
             "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                            "url": f"{b}/compute/v2.1", "id": "n1"}]},
            {"type": "image", "name": "glance", "id": "g",
             "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                            "url": f"{b}/image", "id": "g1"}]},
        ]  # fmt: skip
        token = {
            "token": {
                "methods": ["password"],
                "expires_at": expires,
                "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                "user": {"id": "u1", "name": USER, "domain": {"id": "default", "name": "Default"}},
                "project": {"id": "p1", "name": PROJECT,
                            "domain": {"id": "default", "name": "Default"}},
                "roles": [{"id": "r1", "name": "member"}],
                "catalog": catalog,
            }
        }  # fmt: skip
        raise _Answer(201, token, {"X-Subject-Token": TOKEN})

    def _server_json(self, s: Server) -> dict[str, Any]:
        return {
            "id": s.id,
            "name": s.name,
            "status": s.status,
            "flavor": {"original_name": s.flavor},
            "image": {"id": s.image},
            "metadata": s.metadata,
            "addresses": {},
            "links": [{"rel": "self", "href": f"{self.base}/compute/v2.1/servers/{s.id}"}],
            "tenant_id": "p1",
        }

    def _nova(self, method: str, path: str, query: dict[str, str]) -> None:
        c = self.cloud
        if path in ("/flavors", "/flavors/detail") and method == "GET":
            raise _Answer(200, {"flavors": [dict(f) for f in c.flavors.values()]})
        m = re.fullmatch(r"/flavors/([^/]+)", path)
        if m and method == "GET":
            for f in c.flavors.values():
                if f["id"] == m[1]:
                    raise _Answer(200, {"flavor": dict(f)})
            raise _nova_fault(404, f"Flavor {m[1]} could not be found.")
        m = re.fullmatch(r"/flavors/([^/]+)/os-extra_specs", path)
        if m:
            raise _Answer(200, {"extra_specs": {}})
        if path == "/servers" and method == "POST":
            body = (self._body() or {}).get("server", {})
            flavor = str(body.get("flavorRef", ""))
            if flavor not in {f["id"] for f in c.flavors.values()}:
                raise _nova_fault(400, f"Flavor {flavor} could not be found.")
            if body.get("imageRef") not in c.images.values():
                raise _nova_fault(400, f"Can not find requested image {body.get('imageRef')}")
            nets = [n.get("uuid") for n in body.get("networks", [])]
            for n in nets:
                if n not in c.networks:
                    raise _nova_fault(400, f"Network {n} could not be found.")
            if len(c.servers) >= c.max_servers:
                raise _nova_fault(403, f"Quota exceeded for instances: Requested 1, but already "
                                       f"used {len(c.servers)} of {c.max_servers} instances")  # fmt: skip
            sid = str(uuid.uuid4())
            user_data = base64.b64decode(body.get("user_data", "")).decode()
            c.servers[sid] = Server(sid, body["name"], flavor, body["imageRef"], nets, user_data,
                                    body.get("metadata", {}))  # fmt: skip
            raise _Answer(202, {"server": {"id": sid, "adminPass": "x", "links": []}})
        if path in ("/servers", "/servers/detail") and method == "GET":
            found = [
                self._server_json(s)
                for s in c.servers.values()
                if not query.get("name") or re.search(query["name"], s.name)
            ]
            raise _Answer(200, {"servers": found})
        m = re.fullmatch(r"/servers/([^/]+)", path)
        if m:
            s = c.servers.get(m[1])
            if s is None:
                raise _nova_fault(404, f"Instance {m[1]} could not be found.")
            if method == "DELETE":
                del c.servers[s.id]
                c.deleted.append(s.name)
                c.nodes.pop(s.name, None)  # the kubelet is gone; the node object stays in real life
                raise _Answer(204)
            if method == "GET":
                s.polls += 1
                if s.status == "BUILD" and s.polls >= c.polls_to_active:
                    s.status = "ACTIVE"
                    if c.node_joins:
                        c.add_node(s.name, ready=False)
                        c.node_polls[s.name] = 0
                raise _Answer(200, {"server": self._server_json(s)})
        raise _nova_fault(404, f"no route {method} {path}")


class KubernetesHandler(_Handler):
    """core/v1 nodes, pods, secrets; the pods/eviction subresource (policy/v1)."""

    def route(self, method: str, path: str, query: dict[str, str]) -> None:
        if self.headers.get("Authorization") != "Bearer k8s-token":
            raise _Answer(401, self._status(401, "Unauthorized", "Unauthorized"))
        c = self.cloud
        if path == "/apis/metrics.k8s.io/v1beta1/nodes" and method == "GET":
            if c.metrics_api == "absent":
                raise _Answer(404, self._status(404, "NotFound", "the server could not find the requested resource"))  # fmt: skip
            if c.metrics_api == "down":
                raise _Answer(503, self._status(503, "ServiceUnavailable", "metrics-server is not available"))  # fmt: skip
            items = [
                {"metadata": {"name": n}, "timestamp": "2026-12-02T00:00:00Z", "window": "30s",
                 "usage": {"cpu": cpu, "memory": mem}}
                for n, (cpu, mem) in c.node_metrics.items()
            ]  # fmt: skip
            raise _Answer(200, {"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1",
                                "metadata": {}, "items": items})  # fmt: skip
        if path == "/api/v1/nodes" and method == "GET":
            items = [self._node(n) for n in sorted(c.nodes)]
            sel = query.get("labelSelector")
            if sel:
                k, _, v = sel.partition("=")
                items = [n for n in items if n["metadata"]["labels"].get(k) == v]
            raise _Answer(200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {},
                                "items": items})  # fmt: skip
        m = re.fullmatch(r"/api/v1/nodes/([^/]+)", path)
        if m:
            if m[1] not in c.nodes:
                raise _Answer(404, self._status(404, "NotFound", f'nodes "{m[1]}" not found'))
            if method == "GET":
                raise _Answer(200, self._node(m[1]))
            if method == "PATCH":
                _merge(c.nodes[m[1]], self._body())
                raise _Answer(200, self._node(m[1], poll=False))
            if method == "DELETE":
                del c.nodes[m[1]]
                raise _Answer(200, self._status(200, "Success", "deleted"))
        if path == "/api/v1/pods" and method == "GET":
            items = list(c.pods.values())
            sel = query.get("fieldSelector", "")
            for part in filter(None, sel.split(",")):
                k, _, v = part.partition("=")
                if k == "spec.nodeName":
                    items = [p for p in items if p["spec"].get("nodeName") == v]
                elif k == "status.phase":
                    items = [p for p in items if p["status"]["phase"] == v]
            raise _Answer(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                "items": items})  # fmt: skip
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/eviction", path)
        if m and method == "POST":
            key = (m[1], m[2])
            if key not in c.pods:
                raise _Answer(404, self._status(404, "NotFound", f'pods "{m[2]}" not found'))
            if c.pdb_refusals.get(key, 0) > 0:
                c.pdb_refusals[key] -= 1
                raise _Answer(429, self._status(
                    429, "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget."))  # fmt: skip
            del c.pods[key]
            c.evicted.append(key)
            raise _Answer(201, {"apiVersion": "policy/v1", "kind": "Eviction",
                                "metadata": {"name": m[2], "namespace": m[1]}})  # fmt: skip
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets/([^/]+)", path)
        if m and method == "GET":
            data = c.secrets.get((m[1], m[2]))
            if data is None:
                raise _Answer(404, self._status(404, "NotFound", f'secrets "{m[2]}" not found'))
            enc = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
            raise _Answer(200, {"kind": "Secret", "apiVersion": "v1",
                                "metadata": {"name": m[2], "namespace": m[1]}, "data": enc})  # fmt: skip
        raise _Answer(404, self._status(404, "NotFound", f"no route {method} {path}"))

    def _node(self, name: str, poll: bool = True) -> dict[str, Any]:
        c = self.cloud
        node = c.nodes[name]
        if poll and name in c.node_polls:
            c.node_polls[name] += 1
            if c.node_becomes_ready and c.node_polls[name] >= c.polls_to_ready:
                node["status"]["conditions"][0]["status"] = "True"
                del c.node_polls[name]
        return copy.deepcopy(node)

    @staticmethod
    def _status(code: int, reason: str, message: str) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}  # fmt: skip


def _merge(target: dict[str, Any], patch: Any) -> None:
    """A JSON merge patch (RFC 7386), enough for the strategic merge patches we send (labels,
    ``spec.unschedulable``, ``spec.taints`` replaced whole)."""
    for k, v in (patch or {}).items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


def serve(handler: type[_Handler], cloud: FakeCloud) -> tuple[ThreadingHTTPServer, str]:
    """Start ``handler`` on a free loopback port; (server, base URL)."""
    cls = type(handler.__name__, (handler,), {"cloud": cloud})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), cls)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    cls.base = base  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd, base
