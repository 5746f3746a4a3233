"""Monitoring: samples of the nodes, the steps' consumption, the critical services' health, and
their Prometheus exposition.

The collector (:func:`collect`) runs at every poll of the ``cluster_autoscaler`` sensor: it
samples this machine (psutil: CPU, memory, free disk under ``CANDELA_HOME``, uptime, load),
moves the step records the local runner spooled (``CANDELA_HOME/run/usage``) into
``candela.step_metrics``, checks the services (PostgreSQL, the Airflow components through the API
server's health endpoint, the object store) and logs each change of state, and downsamples old
samples (:data:`RETENTION`). :func:`exposition` renders the tables as Prometheus metrics
(``/candela/metrics`` on the API server) for an operator's Grafana.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# raw samples for a day, 5-minute means for 30 days, hourly means for a year
RETENTION = {"raw": dt.timedelta(days=1), "5m": dt.timedelta(days=30), "1h": dt.timedelta(days=365)}


def node_sample(home: Path) -> dict[str, Any]:
    import os

    import psutil

    disk_root = home if home.exists() else Path("/")
    return {
        "node": socket.gethostname(),
        "at": dt.datetime.now(dt.UTC),
        "cpu_pct": psutil.cpu_percent(interval=0.2),
        "mem_pct": psutil.virtual_memory().percent,
        "disk_free_gib": psutil.disk_usage(str(disk_root)).free / 2**30,
        "uptime_s": time.time() - psutil.boot_time(),
        "load1": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def ingest_spool(dsn: str, home: Path) -> int:
    """Move the spooled step records into the table; the number recorded. A record that is not
    valid JSON is set aside (``*.bad``) rather than retried for ever."""
    from candela.db.metrics import add_step
    from candela_operators.usage import spool_dir

    n = 0
    folder = spool_dir(home)
    if not folder.exists():
        return 0
    for f in sorted(folder.glob("*.json")):
        try:
            record = json.loads(f.read_text())
            if add_step(dsn, record):
                n += 1
        except (ValueError, KeyError) as exc:
            log.warning("step record %s unreadable (%s): set aside", f.name, exc)
            f.rename(f.with_suffix(".bad"))
            continue
        f.unlink(missing_ok=True)
    return n


def check_services(settings: Any, dsn: str | None) -> dict[str, tuple[bool, str]]:
    """(up, detail) per critical service."""
    import httpx

    out: dict[str, tuple[bool, str]] = {}
    if dsn:
        try:
            from candela.db import connect

            with connect(dsn, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            out["postgresql"] = (True, "accepts connections")
        except Exception as exc:
            out["postgresql"] = (False, str(exc).splitlines()[0][:200])
    else:
        out["postgresql"] = (False, "no platform database configured or running")
    try:
        r = httpx.get(f"{_api_url(settings)}/api/v2/monitor/health", timeout=5)
        r.raise_for_status()
        for component, state in r.json().items():
            status = str((state or {}).get("status"))
            out[f"airflow-{component.replace('_', '-')}"] = (status == "healthy", status)
        out["airflow-api-server"] = (True, f"HTTP {r.status_code}")
    except Exception as exc:
        out["airflow-api-server"] = (False, f"{type(exc).__name__}: {exc}"[:200])
    root = str(settings.storage)
    if root.startswith("s3://"):
        try:
            from candela_sdk.storage import exists

            exists(root.rstrip("/") + "/")
            out["s3"] = (True, root)
        except Exception as exc:
            out["s3"] = (False, f"{root}: {exc}"[:200])
    else:
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(root).path))
        if path.exists():
            out["storage"] = (True, str(path))
        elif path.parent.exists():  # made at the first write
            out["storage"] = (True, f"{path} (not written yet)")
        else:
            out["storage"] = (False, f"{path} and its parent are missing")
    return out


def _api_url(settings: Any) -> str:
    """The API server: ``CANDELA_AIRFLOW_URL``, else Airflow's ``[api] base_url`` when running
    inside Airflow (the embedded platform's own port), else the settings' local URL."""
    if settings.airflow_url:
        return str(settings.airflow_url).rstrip("/")
    try:
        from candela.airflow_api import api_server_url

        return api_server_url()
    except Exception:
        return str(settings.api_url)


def collect(dsn: str, settings: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    """One collector pass (see the module's docstring); what it did."""
    from candela.db import metrics as table

    home = Path(settings.home).expanduser().absolute()
    table.add_node_sample(dsn, node_sample(home))
    steps = ingest_spool(dsn, home)
    changes = []
    for service, (up, detail) in check_services(settings, dsn).items():
        if table.set_health(dsn, service, up, detail):
            changes.append(service)
            log.log(logging.INFO if up else logging.WARNING, "service %s %s: %s", service,
                    "up" if up else "DOWN", detail)  # fmt: skip
    folded = retain(dsn, now)
    return {"steps": steps, "changed": changes, "downsampled": folded}


def retain(dsn: str, now: dt.datetime | None = None) -> int:
    from candela.db import metrics as table

    now = now or dt.datetime.now(dt.UTC)
    folded = table.downsample(dsn, "raw", "5m", now - RETENTION["raw"])
    folded += table.downsample(dsn, "5m", "1h", now - RETENTION["5m"])
    table.drop_older(dsn, "1h", now - RETENTION["1h"])
    return folded


# -- Prometheus ------------------------------------------------------------------------------


class _TablesCollector:
    """A prometheus-client collector that reads the tables at each scrape."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from candela.db import metrics as table
        from candela.db import scaling

        nodes = table.latest_nodes(self.dsn)
        gauges = {
            "cpu_pct": ("candela_node_cpu_percent", "CPU use of the node, percent"),
            "mem_pct": ("candela_node_memory_percent", "memory use of the node, percent"),
            "disk_free_gib": ("candela_node_disk_free_gib", "free disk under CANDELA_HOME, GiB"),
            "uptime_s": ("candela_node_uptime_seconds", "seconds since the node booted"),
        }
        for key, (name, doc) in gauges.items():
            g = GaugeMetricFamily(name, doc, labels=["node"])
            for n in nodes:
                g.add_metric([n["node"]], float(n[key]))
            yield g
        up = GaugeMetricFamily("candela_service_up", "1 when the service's check passes",
                               labels=["service"])  # fmt: skip
        for h in table.health(self.dsn):
            up.add_metric([h["service"]], 1.0 if h["up"] else 0.0)
        yield up
        totals = table.step_totals(self.dsn)
        for key, name, doc in [
            ("steps", "candela_steps", "steps measured"),
            ("cpu_s", "candela_step_cpu_seconds", "CPU-seconds of the steps"),
            ("gpu_s", "candela_step_gpu_seconds", "GPU-seconds of the steps"),
            ("duration_s", "candela_step_duration_seconds", "wall seconds of the steps"),
        ]:
            c = CounterMetricFamily(name, doc, labels=["service"])
            for t in totals:
                c.add_metric([t["service"]], float(t[key] or 0))
            yield c
        peak = GaugeMetricFamily("candela_step_peak_memory_mib", "largest step peak memory",
                                 labels=["service"])  # fmt: skip
        for t in totals:
            peak.add_metric([t["service"]], float(t["peak_rss_mib"] or 0))
        yield peak
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        per_user = GaugeMetricFamily("candela_user_cpu_hours_24h",
                                     "CPU-hours of each user's runs started in the last 24 h",
                                     labels=["user"])  # fmt: skip
        sums: dict[str, float] = {}
        for r in table.usage(self.dsn, since):
            sums[r["who"]] = sums.get(r["who"], 0.0) + float(r["cpu_hours"])
        for who, v in sorted(sums.items()):
            per_user.add_metric([who], v)
        yield per_user
        dec = CounterMetricFamily("candela_scaling_decisions",
                                  "autoscaler decisions that changed (or planned to change) a group",
                                  labels=["group", "action", "outcome"])  # fmt: skip
        counts: dict[tuple[str, str, str], int] = {}
        for d in scaling.recent(self.dsn, limit=10000, changes_only=True):
            k = (d["node_group"], d["action"], d["outcome"])
            counts[k] = counts.get(k, 0) + 1
        for k, v in sorted(counts.items()):
            dec.add_metric(list(k), v)
        yield dec


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # prometheus_client.CONTENT_TYPE_LATEST


def exposition(dsn: str) -> bytes:
    """The Prometheus text format of the tables."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_TablesCollector(dsn))  # type: ignore[arg-type]
    return bytes(generate_latest(registry))
