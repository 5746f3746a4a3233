"""The platform over HTTP: Airflow's REST API (``/api/v2``: workflow runs), the OGC API –
Processes (``/ogc``: services and workflows as processes, jobs), the results STAC API and
downloads (``/candela/stac``, ``/candela/runs``) and the knowledge base (``/candela/sparql``).

One login for all of them: a JWT from ``POST /auth/token`` sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from candela_client import rasters
from candela_client.config import ClientConfig, S3Config
from candela_client.progress import Progress, RunProgress, poll_with_backoff

CHANGE_DETECTION = "s2_change_detection"
TERMINAL_RUN_STATES = {"success", "failed"}
TERMINAL_JOB_STATES = {"successful", "failed", "dismissed"}


class CandelaError(Exception):
    """The platform refused or failed a call. ``status``: the HTTP status (``None`` when the
    platform could not be reached); ``detail``: its own explanation."""

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail

    @property
    def transient(self) -> bool:
        """Whether asking again later may succeed (unreachable, 429 or 5xx)."""
        return self.status is None or self.status == 429 or self.status >= 500


def _q(value: str) -> str:
    return quote(value, safe="")


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    if isinstance(body, dict):
        found = body.get("detail") or body.get("description") or body.get("title") or body
    else:
        found = body
    if isinstance(found, list):
        return "; ".join(
            f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}"
            if isinstance(d, dict)
            else str(d)
            for d in found
        )
    return str(found)


@dataclass
class Run:
    """A workflow run (an Airflow DAG run): its state and the state of each step."""

    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str] = field(default_factory=dict)  # task[map index] -> state
    conf: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_RUN_STATES


@dataclass
class Job:
    """An OGC API – Processes job: ``status`` (accepted, running, successful, failed, …)."""

    job_id: str
    process_id: str
    status: str
    progress: int | None = None
    message: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_JOB_STATES


class Client:
    """A session with one Candela platform.

    >>> c = Client.from_env()                     # CANDELA_URL, CANDELA_TOKEN or USERNAME/PASSWORD
    >>> items = c.search(bbox=[-0.7, 44.8, -0.5, 45.0])            # results STAC API
    >>> run = c.run_workflow({"bbox": [...], "model": "cva", ...})   # with a progress bar
    >>> da = c.open_result(c.results(run)[0], "change_probability")  # xarray or Raster
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        s3: S3Config | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        cfg = ClientConfig.from_env()
        self.url = (url or cfg.url).rstrip("/")
        self.username = username or (cfg.username if token is None else None)
        self.password = password or (cfg.password if token is None else None)
        self.s3 = s3 if s3 is not None else cfg.s3
        self._token = token or (cfg.token if username is None else None)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    @classmethod
    def from_config(cls, cfg: ClientConfig, transport: httpx.BaseTransport | None = None) -> Client:
        return cls(
            cfg.url,
            token=cfg.token,
            username=cfg.username,
            password=cfg.password,
            s3=cfg.s3,
            timeout=cfg.timeout,
            transport=transport,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Client:
        """A client configured by the environment (see :class:`ClientConfig`)."""
        return cls.from_config(ClientConfig.from_env(env))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- HTTP ------------------------------------------------------------------------------

    def login(self) -> str:
        """A fresh JWT from ``POST /auth/token`` with the username and password."""
        if not (self.username and self.password):
            raise CandelaError(
                "no credentials: give a token (CANDELA_TOKEN) or a username and password "
                "(CANDELA_USERNAME, CANDELA_PASSWORD)"
            )
        r = self._send(
            "POST", "/auth/token", json={"username": self.username, "password": self.password}
        )
        if r.status_code >= 400:
            raise CandelaError(f"login as {self.username!r} refused", r.status_code, _detail(r))
        self._token = str(r.json()["access_token"])
        return self._token

    @property
    def token(self) -> str:
        """The JWT sent with every call (logging in first if needed)."""
        return self._token or self.login()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CandelaError(f"{self.url} did not answer {method} {path}: {exc}") from None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One authenticated call (a 401 logs in again once when a password is known); an
        error answer raises :class:`CandelaError` with the platform's explanation."""
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token}"}
        r = self._send(method, path, headers=headers, **kwargs)
        if r.status_code == 401 and self.username and self.password:
            headers["Authorization"] = f"Bearer {self.login()}"
            r = self._send(method, path, headers=headers, **kwargs)
        if r.status_code >= 400:
            raise CandelaError(
                f"{method} {path}: HTTP {r.status_code}: {_detail(r)}", r.status_code, _detail(r)
            )
        return r

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # --- results: STAC API -----------------------------------------------------------------

    def collections(self) -> list[dict[str, Any]]:
        """The results' collections (one per workflow)."""
        return list(self._json("GET", "/candela/stac/collections")["collections"])

    def search(
        self,
        *,
        bbox: Sequence[float] | None = None,
        intersects: dict[str, Any] | None = None,
        datetime: str | None = None,
        collections: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        limit: int = 100,
        max_items: int | None = 1000,
    ) -> list[dict[str, Any]]:
        """Published results (STAC items) matching the query, following the pages; each
        asset's storage URI (to read in place) is in ``candela:href``."""
        return list(
            self.iter_search(
                bbox=bbox,
                intersects=intersects,
                datetime=datetime,
                collections=collections,
                ids=ids,
                limit=limit,
                max_items=max_items,
            )
        )

    def iter_search(
        self,
        *,
        bbox: Sequence[float] | None = None,
        intersects: dict[str, Any] | None = None,
        datetime: str | None = None,
        collections: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        limit: int = 100,
        max_items: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """:meth:`search`, one item at a time."""
        body: dict[str, Any] = {"limit": limit}
        if bbox is not None:
            body["bbox"] = [float(v) for v in bbox]
        if intersects is not None:
            body["intersects"] = intersects
        if datetime is not None:
            body["datetime"] = datetime
        if collections is not None:
            body["collections"] = list(collections)
        if ids is not None:
            body["ids"] = list(ids)
        seen = 0
        while True:
            page = self._json("POST", "/candela/stac/search", json=body)
            for item in page.get("features", []):
                yield item
                seen += 1
                if max_items is not None and seen >= max_items:
                    return
            nxt = next((x for x in page.get("links", []) if x.get("rel") == "next"), None)
            if not nxt or not page.get("features"):
                return
            body = {**body, **(nxt.get("body") or {})}
            if "token" not in (nxt.get("body") or {}):
                token = httpx.URL(nxt["href"]).params.get("token")
                if token is None:
                    return
                body["token"] = token

    # --- OGC API – Processes: services, workflows as processes, jobs ------------------------

    def processes(self) -> list[dict[str, Any]]:
        """The processes the platform offers: each service, and each workflow."""
        return list(self._json("GET", "/ogc/processes")["processes"])

    def execute(self, process_id: str, inputs: Mapping[str, Any]) -> Job:
        """Start ``process_id`` with ``inputs`` (asynchronously); follow it with
        :meth:`follow_job`."""
        r = self.request(
            "POST",
            f"/ogc/processes/{_q(process_id)}/execution",
            json={"inputs": dict(inputs)},
            headers={"Prefer": "respond-async"},
        )
        return self._job(r.json())

    @staticmethod
    def _job(doc: dict[str, Any]) -> Job:
        return Job(
            job_id=str(doc["jobID"]),
            process_id=str(doc.get("processID") or ""),
            status=str(doc["status"]),
            progress=doc.get("progress"),
            message=doc.get("message"),
        )

    def job(self, job_id: str) -> Job:
        """The job's status now."""
        return self._job(self._json("GET", f"/ogc/jobs/{_q(job_id)}"))

    def job_results(self, job_id: str) -> Any:
        """The value a finished job returned (a service's JSON result, a workflow's summary)."""
        doc = self._json("GET", f"/ogc/jobs/{_q(job_id)}/results")
        return (doc.get("result") or {}).get("value")

    def follow_job(
        self,
        job_id: str,
        *,
        progress: bool | Progress = True,
        poll: float = 2.0,
        timeout: float = 3600,
    ) -> Job:
        """Poll the job until it ends, with a progress bar (the job's percentage); transient
        errors are retried with exponential backoff (see :func:`poll_with_backoff`)."""
        bar = RunProgress.make(progress, f"job {job_id[:16]}…")

        def step() -> Job:
            j = self.job(job_id)
            bar.update(j.progress or (100 if j.done else 0), 100, j.status)
            return j

        try:
            return poll_with_backoff(
                step, lambda j: j.done, poll=poll, timeout=timeout, transient=_transient
            )
        finally:
            bar.close()

    def run_service(
        self,
        service: str,
        inputs: Mapping[str, Any],
        *,
        progress: bool | Progress = True,
        timeout: float = 3600,
    ) -> Any:
        """Run one processing service (``search``, ``preprocess``, ``changedetect``, …) as an
        OGC process, follow it, and return its JSON result; a failed job raises."""
        job = self.execute(service, inputs)
        final = self.follow_job(job.job_id, progress=progress, timeout=timeout)
        if final.status != "successful":
            raise CandelaError(
                f"service {service} job {final.job_id} {final.status}: {final.message or ''}"
            )
        return self.job_results(final.job_id)

    def search_products(self, progress: bool | Progress = False, **inputs: Any) -> list[Any]:
        """Input products (STAC items of Sentinel scenes) through the ``search`` service:
        ``bbox``, ``start``, ``end``, ``collection``, ``max_cloud``, … as the service takes
        them (see ``processes()``)."""
        value = self.run_service("search", inputs, progress=progress)
        if isinstance(value, dict):
            return list(value.get("items") or value.get("features") or [])
        return list(value or [])

    # --- workflows: Airflow's REST API -----------------------------------------------------

    def trigger(self, conf: Mapping[str, Any], dag_id: str = CHANGE_DETECTION) -> Run:
        """Start a run of ``dag_id`` with ``conf`` (unpausing the workflow if it is paused).
        The platform checks the parameters first: a bad one is a :class:`CandelaError` (400),
        an identical run in progress too (409)."""
        dag = self._json("GET", f"/api/v2/dags/{_q(dag_id)}")
        if dag.get("is_paused"):
            self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", json={"is_paused": False})
        doc = self._json(
            "POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", json={"logical_date": None, "conf": conf}
        )
        return Run(dag_id, str(doc["dag_run_id"]), str(doc["state"]), conf=doc.get("conf") or {})

    def run(self, run_id: str, dag_id: str = CHANGE_DETECTION) -> Run:
        """The run's state and its steps' states now."""
        doc = self._json("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")
        tis = self._json(
            "GET",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances",
            params={"limit": 1000},
        )["task_instances"]
        tasks = {}
        for ti in tis:
            mi = ti.get("map_index", -1)
            key = ti["task_id"] + (f"[{mi}]" if mi is not None and mi >= 0 else "")
            tasks[key] = ti.get("state") or "none"
        return Run(dag_id, run_id, str(doc["state"]), tasks, doc.get("conf") or {})

    def follow(
        self,
        run: Run | str,
        *,
        dag_id: str = CHANGE_DETECTION,
        progress: bool | Progress = True,
        poll: float = 2.0,
        timeout: float = 3600,
        max_backoff: float = 30.0,
        on_change: Callable[[Run], None] | None = None,
    ) -> Run:
        """Poll the run until it ends, with a progress bar: steps finished out of steps known
        (mapped steps join as they expand). The platform not answering (unreachable, 429, 5xx)
        is retried with exponential backoff up to ``max_backoff`` s; other errors end it."""
        if isinstance(run, Run):
            dag_id, run_id = run.dag_id, run.run_id
        else:
            run_id = run
        bar = RunProgress.make(progress, run_id)
        last: list[Run] = []

        def step() -> Run:
            r = self.run(run_id, dag_id)
            bar.update_run(r.tasks, r.state)
            if on_change is not None and (not last or last[0].tasks != r.tasks):
                on_change(r)
            last[:] = [r]
            return r

        try:
            return poll_with_backoff(
                step,
                lambda r: r.done,
                poll=poll,
                timeout=timeout,
                max_backoff=max_backoff,
                transient=_transient,
            )
        finally:
            bar.close()

    def run_workflow(
        self,
        conf: Mapping[str, Any],
        dag_id: str = CHANGE_DETECTION,
        *,
        progress: bool | Progress = True,
        timeout: float = 3600,
    ) -> Run:
        """:meth:`trigger` then :meth:`follow`; returns the final run (``state`` success or
        failed: a failed run is returned, not raised, so that its steps can be inspected)."""
        return self.follow(
            self.trigger(conf, dag_id), dag_id=dag_id, progress=progress, timeout=timeout
        )

    def summary(self, run: Run | str, dag_id: str = CHANGE_DETECTION) -> dict[str, Any]:
        """The published run's summary (``run.json``: parameters, inputs, results with their
        outputs' storage URIs and STAC items)."""
        dag_id, run_id = (run.dag_id, run.run_id) if isinstance(run, Run) else (dag_id, run)
        return dict(self._json("GET", f"/candela/runs/{_q(dag_id)}/{_q(run_id)}/run.json"))

    def results(self, run: Run | str, dag_id: str = CHANGE_DETECTION) -> list[dict[str, Any]]:
        """The run's published results as STAC items of the results API (assets with their
        storage URI in ``candela:href``)."""
        dag_id, run_id = (run.dag_id, run.run_id) if isinstance(run, Run) else (dag_id, run)
        ids = []
        for res in self.summary(run_id, dag_id).get("results", []):
            if res.get("item_id"):
                ids.append(str(res["item_id"]))
        if not ids:
            return []
        return self.search(collections=[dag_id], ids=ids)

    # --- reading ---------------------------------------------------------------------------

    def read(
        self,
        item_or_uri: dict[str, Any] | str,
        asset: str | None = None,
        **kwargs: Any,
    ) -> rasters.Raster:
        """Read an asset of a STAC item (or a storage URI) in place, windowed: ``bbox=`` (lon/lat)
        or ``window=``, ``bands=``. See :func:`candela_client.rasters.read`."""
        return rasters.read(_uri(item_or_uri, asset), s3=self.s3, **kwargs)

    def open_result(
        self, item_or_uri: dict[str, Any] | str, asset: str | None = None, **kwargs: Any
    ) -> Any:
        """The asset as an :class:`xarray.DataArray` when rioxarray is installed, else as a
        :class:`~candela_client.rasters.Raster` (numpy, through rasterio)."""
        uri = _uri(item_or_uri, asset)
        if rasters.has_xarray():
            return rasters.open_dataarray(uri, s3=self.s3, **kwargs)
        return rasters.read(uri, s3=self.s3, **kwargs)

    def download(self, href: str, dest: str | Path) -> Path:
        """Fetch a platform download link (an asset's ``href``) to ``dest``, written whole or
        not at all."""
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        with self._http.stream("GET", href, headers={"Authorization": f"Bearer {self.token}"}) as r:
            if r.status_code >= 400:
                r.read()
                raise CandelaError(f"GET {href}: HTTP {r.status_code}", r.status_code, _detail(r))
            try:
                with part.open("wb") as f:
                    for chunk in r.iter_bytes():
                        f.write(chunk)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        part.replace(dest)
        return dest

    # --- knowledge base --------------------------------------------------------------------

    def has_knowledge_base(self) -> bool:
        """Whether the platform answers SPARQL at ``/candela/sparql``."""
        try:
            self.sparql("ASK { }")
        except CandelaError as exc:
            if exc.status in (404, 503):
                return False
            raise
        return True

    def sparql(self, query: str) -> list[dict[str, Any]]:
        """A SPARQL SELECT (or ASK: one row ``{"boolean": …}``) on the knowledge base; rows of
        plain values (literals and IRIs as strings)."""
        doc = self._json(
            "POST",
            "/candela/sparql",
            content=query.encode(),
            headers={
                "Content-Type": "application/sparql-query",
                "Accept": "application/sparql-results+json",
            },
        )
        if "boolean" in doc:
            return [{"boolean": bool(doc["boolean"])}]
        return [{k: v.get("value") for k, v in row.items()} for row in doc["results"]["bindings"]]

    def question(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """A ready-made question of the knowledge base (``/candela/questions``, e.g.
        ``changed-communes`` with ``min_ha=5``), its parameters by name; rows as :meth:`sparql`."""
        doc = self._json(
            "GET",
            f"/candela/questions/{_q(name)}",
            params={**{k: str(v) for k, v in params.items()}, "format": "json"},
        )
        return [{k: v.get("value") for k, v in row.items()} for row in doc["results"]["bindings"]]


def _transient(exc: Exception) -> bool:
    return isinstance(exc, CandelaError) and exc.transient


def _uri(item_or_uri: dict[str, Any] | str, asset: str | None) -> str:
    if isinstance(item_or_uri, str):
        return item_or_uri
    assets = item_or_uri.get("assets") or {}
    if asset is None or asset not in assets:
        raise rasters.RasterError(
            f"item {item_or_uri.get('id')!r} has no asset {asset!r}; assets: "
            + ", ".join(sorted(assets))
        )
    a = assets[asset]
    return str(a.get("candela:href") or a["href"])
