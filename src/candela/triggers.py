"""What starts pipeline runs besides a user: new products in the catalogue, saved watches.

* ``candela catalog add`` emits an event on the Airflow asset :data:`CATALOG_ASSET` with the ids
  of the products it added; the ``s2_new_products`` DAG, scheduled on that asset, compares each
  new product with the previous product of the same tile and collection.
* A *watch* (``candela watch add``) is an AOI + collection + model checked every N days by the
  ``s2_watches`` DAG, which starts a run over the products since the last one it compared.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

CATALOG_ASSET_URI = "candela://catalog/products"


def pair_runs_for_new_products(dsn: str, product_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Pipeline parameters comparing each new product with its predecessor (same tile)."""
    from candela.db.products import product_and_predecessors
    from candela.workflows import BadRunConf, ChangeDetectionConf

    confs: dict[tuple[Any, ...], dict[str, Any]] = {}
    for pid, row, prev in product_and_predecessors(dsn, product_ids):
        if row is None:
            log.warning("new product %s is not in the catalogue; ignored", pid)
            continue
        collection, tile, when, *bbox = row
        if not collection.startswith("sentinel-2"):
            log.info("%s: %s is not a Sentinel-2 collection; ignored", pid, collection)
            continue
        if prev is None:
            log.info("%s has no earlier product of tile %s: nothing to compare", pid, tile)
            continue
        fields: dict[str, Any] = {
            "collection": collection,
            "bbox": [float(x) for x in bbox],
            "start": prev[1].date(),
            "end": when.date(),
        }
        if tile:
            fields["tile"] = tile
        try:
            conf = ChangeDetectionConf.checked(fields).conf()
        except BadRunConf as exc:
            log.warning("%s: no run: %s", pid, exc)
            continue
        key = (collection, tile, conf["start"], conf["end"], tuple(conf["bbox"]))
        confs[key] = conf
        log.info("%s will be compared with %s", pid, prev[0])
    return list(confs.values())


def due_watch_runs(dsn: str, now: dt.datetime) -> list[tuple[str, dict[str, Any]]]:
    """(watch name, pipeline parameters) for every watch whose period has elapsed."""
    from candela.db.products import latest_before
    from candela.db.runs import list_watches
    from candela.workflows import BadRunConf

    due = []
    for w in list_watches(dsn):
        if not w.due(now):
            continue
        start = w.since
        if w.last_run_at is not None:
            # start from the last product the previous run saw, so it is compared with the new
            last = latest_before(dsn, w.collection, w.last_run_at, w.bbox)
            if last is not None:
                start = max(last.date(), w.since)
        try:
            due.append((w.name, w.conf(now.date(), start)))
        except BadRunConf as exc:
            log.warning("watch %s: no run: %s", w.name, exc)
    return due


def emit_catalog_event(client: Any, product_ids: list[str]) -> bool:
    """Tell Airflow that products were added (asset event); False if the asset is unknown yet."""
    r = client.request("GET", "/api/v2/assets", params={"uri_pattern": CATALOG_ASSET_URI})
    if r.status_code != 200:
        return False
    assets = [a for a in r.json().get("assets", []) if a.get("uri") == CATALOG_ASSET_URI]
    if not assets:
        return False
    r = client.request(
        "POST",
        "/api/v2/assets/events",
        json={"asset_id": assets[0]["id"], "extra": {"products": product_ids}},
    )
    return r.status_code in (200, 201)
