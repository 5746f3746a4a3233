"""A read-only STAC API (core, collections, item search with paging) over ``candela.results``.

One collection per workflow (DAG id). Items are the published STAC items with their links made
absolute (self, parent, collection, root) and their assets pointing at the download endpoint,
so a STAC client (pystac-client, QGIS) can fetch them; the storage URI stays in
``candela:href``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from candela.db import results
from candela.web_errors import BadRequest, Unavailable

log = logging.getLogger(__name__)

STAC_VERSION = "1.1.0"
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1  # a paging token's offset: far beyond any results table
GEOJSON = "application/geo+json"


@dataclass
class Query:
    collections: list[str] | None = None
    ids: list[str] | None = None
    bbox: list[float] | None = None
    intersects: dict[str, Any] | None = None  # a GeoJSON geometry (WGS 84)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _split(value: Any, what: str) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadRequest(f"{what} must be a list of strings or a comma-separated string")


def parse_bbox(value: Any, body: bool = False) -> list[float] | None:
    """``minx,miny,maxx,maxy`` (GET) or a JSON array of numbers (POST ``body``)."""
    if value is None or value == "":
        return None
    if body and not isinstance(value, list):
        raise BadRequest(f"bbox in a POST body must be a JSON array of 4 numbers; got {value!r}")
    parts = value.split(",") if isinstance(value, str) else value
    try:
        nums = [float(v) for v in parts]
    except (TypeError, ValueError):
        raise BadRequest(f"bbox must be 4 numbers minx,miny,maxx,maxy; got {value!r}") from None
    if len(nums) == 6:  # 3D: drop the heights
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
        raise BadRequest(f"bbox must be 4 numbers minx,miny,maxx,maxy; got {value!r}")
    w, s, e, n = nums
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= n <= 90):
        raise BadRequest(f"bbox {nums} is outside WGS 84 or has miny > maxy")
    return nums


# RFC 3339 date-time (section 5.6): full date, "T" (or t, or a space), time, and an offset
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")


def _parse_instant(text: str) -> dt.datetime | None:
    if text in ("", ".."):
        return None
    if not RFC3339.match(text):
        raise BadRequest(
            f"datetime {text!r} is not an RFC 3339 date-time (e.g. 2017-10-26T00:00:00Z)"
        )
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"datetime {text!r} is not RFC 3339 (e.g. 2017-10-26T00:00:00Z)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def parse_datetime(value: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        raise BadRequest("datetime must be a string: an instant or an interval start/end")
    if "/" in value:
        a, _, b = value.partition("/")
        start, end = _parse_instant(a), _parse_instant(b)
        if start is None and end is None:
            raise BadRequest("datetime interval '../..' is open at both ends")
        if start and end and start > end:
            raise BadRequest(f"datetime interval {value!r} ends before it starts")
        return start, end
    t = _parse_instant(value)
    if t is None:
        raise BadRequest(f"datetime {value!r} is not RFC 3339")
    return t, t


def _whole_number(value: Any) -> int | None:
    """``value`` as an integer if it is one (JSON number or ASCII digits), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        digits = text.removeprefix("-")
        if digits.isascii() and digits.isdigit() and len(digits) <= 18:
            return int(text)
    return None


def parse_limit(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    n = _whole_number(value)
    if n is None or n < 1:
        raise BadRequest(f"limit must be a positive integer; got {value!r}")
    return min(n, MAX_LIMIT)  # a larger limit is clamped (STAC API: the server's maximum)


def parse_token(value: Any) -> int:
    """The offset in a ``next:N`` paging token (the ``next`` links of this API)."""
    if value is None or value == "":
        return 0
    text = value.removeprefix("next:") if isinstance(value, str) else None
    n = _whole_number(text) if text and text[0] != "-" else None
    if n is None or n > MAX_OFFSET:
        raise BadRequest(f"token {value!r} is not a paging token of this API")
    return n


GEOMETRY_TYPES = {
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
    "GeometryCollection",
}  # fmt: skip


def parse_intersects(value: Any) -> dict[str, Any] | None:
    """A GeoJSON geometry (a JSON object in a POST body, JSON text in a GET query)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise BadRequest("intersects must be a GeoJSON geometry") from None
    if not isinstance(value, dict) or value.get("type") not in GEOMETRY_TYPES:
        raise BadRequest("intersects must be a GeoJSON geometry (Point, Polygon, …)")
    from shapely.geometry import shape

    try:
        geom = shape(value)
    except Exception:
        raise BadRequest("intersects is not a valid GeoJSON geometry") from None
    if geom.is_empty or not all(math.isfinite(v) for v in geom.bounds):
        raise BadRequest("intersects is an empty geometry")
    return value


def parse_query(params: dict[str, Any], body: bool = False) -> Query:
    known = {"collections", "ids", "bbox", "datetime", "limit", "token", "intersects", "fields"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise BadRequest(f"unsupported search parameter(s): {', '.join(unknown)}")
    intersects = parse_intersects(params.get("intersects"))
    bbox = parse_bbox(params.get("bbox"), body=body)
    if intersects is not None and bbox is not None:
        raise BadRequest("give bbox or intersects, not both")
    start, end = parse_datetime(params.get("datetime"))
    return Query(
        collections=_split(params.get("collections"), "collections"),
        ids=_split(params.get("ids"), "ids"),
        bbox=bbox,
        intersects=intersects,
        start=start,
        end=end,
        limit=parse_limit(params.get("limit")),
        offset=parse_token(params.get("token")),
    )


class ResultsCatalog:
    """Queries of the results table (:mod:`candela.db.results`), with an unreachable database as
    a 503."""

    def __init__(self, dsn: str, readable: frozenset[str] | None = None) -> None:
        self.dsn = dsn
        self.readable = readable  # the workflows the caller may read (None: every one)

    def _allowed(self, workflow: str) -> bool:
        return self.readable is None or workflow in self.readable

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import psycopg

        try:
            return fn(self.dsn, *args, **kwargs)
        except psycopg.OperationalError as exc:
            raise Unavailable(f"the results database is not reachable: {exc}") from None

    def collections(self) -> list[dict[str, Any]]:
        return [c for c in self._call(results.collections) if self._allowed(c["id"])]

    def search(self, q: Query) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
        workflows = q.collections
        if self.readable is not None:
            workflows = [w for w in (workflows or sorted(self.readable)) if w in self.readable]
            if not workflows:
                return [], 0
        found: tuple[list[tuple[str, str, dict[str, Any]]], int] = self._call(
            results.search,
            workflows=workflows,
            ids=q.ids,
            bbox=q.bbox,
            intersects=q.intersects,
            start=q.start,
            end=q.end,
            limit=q.limit,
            offset=q.offset,
        )
        return found

    def run_ids(self) -> list[tuple[str, str, Any]]:
        return [r for r in self._call(results.run_ids) if self._allowed(r[0])]

    def runs(self) -> list[dict[str, Any]]:
        """Every run with results (:func:`candela.db.results.runs`) of the workflows the
        caller may read, newest first."""
        return [r for r in self._call(results.runs) if self._allowed(r["workflow"])]


def _iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t else None


class StacRenderer:
    """Builds the STAC documents with absolute links under ``base`` (…/candela)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.stac = f"{self.base}/stac"

    def landing(self, collections: list[dict[str, Any]]) -> dict[str, Any]:
        links = [
            {"rel": "self", "href": f"{self.stac}/", "type": "application/json"},
            {"rel": "root", "href": f"{self.stac}/", "type": "application/json"},
            {"rel": "conformance", "href": f"{self.stac}/conformance", "type": "application/json"},
            {"rel": "data", "href": f"{self.stac}/collections", "type": "application/json"},
            {
                "rel": "service-desc",
                "href": f"{self.base}/openapi.json",
                "type": "application/vnd.oai.openapi+json;version=3.1",  # app.OPENAPI_MEDIA
                "title": "OpenAPI document of this API",
            },
            {
                "rel": "service-doc",
                "href": f"{self.base}/docs",
                "type": "text/html",
                "title": "API documentation",
            },
            {"rel": "search", "href": f"{self.stac}/search", "type": GEOJSON, "method": "GET"},
            {"rel": "search", "href": f"{self.stac}/search", "type": GEOJSON, "method": "POST"},
        ]
        links += [
            {
                "rel": "child",
                "href": f"{self.stac}/collections/{quote(c['id'], safe='')}",
                "type": "application/json",
                "title": c["id"],
            }
            for c in collections
        ]
        return {
            "type": "Catalog",
            "stac_version": STAC_VERSION,
            "id": "candela-results",
            "title": "Candela results",
            "description": "Outputs published by Candela's workflows (one collection per workflow).",
            "conformsTo": CONFORMANCE,
            "links": links,
        }

    def collection(self, c: dict[str, Any]) -> dict[str, Any]:
        cid = quote(c["id"], safe="")
        return {
            "type": "Collection",
            "stac_version": STAC_VERSION,
            "id": c["id"],
            "title": f"Results of workflow {c['id']}",
            "description": f"STAC items published by the {c['id']} workflow ({c['count']} item(s)).",
            "license": "other",
            "extent": {
                "spatial": {"bbox": [c["bbox"] or [-180.0, -90.0, 180.0, 90.0]]},
                "temporal": {"interval": [[_iso(c["start"]), _iso(c["end"])]]},
            },
            "links": [
                {
                    "rel": "self",
                    "href": f"{self.stac}/collections/{cid}",
                    "type": "application/json",
                },
                {"rel": "root", "href": f"{self.stac}/", "type": "application/json"},
                {"rel": "parent", "href": f"{self.stac}/", "type": "application/json"},
                {"rel": "items", "href": f"{self.stac}/collections/{cid}/items", "type": GEOJSON},
            ],
        }

    def item(self, workflow: str, run_id: str, item: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(item))
        cid = quote(workflow, safe="")
        out["collection"] = workflow
        props = out.setdefault("properties", {})
        if props.get("datetime") is None and props.get("end_datetime"):
            # a change is seen at the later date: the item's nominal time (its period stays in
            # start_datetime/end_datetime), so that no client meets a null datetime
            props["datetime"] = props["end_datetime"]
        keep = [
            link
            for link in out.get("links", [])
            if link.get("rel") not in ("self", "root", "parent", "collection")
        ]
        run = f"{self.base}/runs/{quote(workflow, safe='')}/{quote(run_id, safe='')}"
        out["links"] = [
            {
                "rel": "self",
                "href": f"{self.stac}/collections/{cid}/items/{quote(out['id'], safe='')}",
                "type": GEOJSON,
            },
            {"rel": "parent", "href": f"{self.stac}/collections/{cid}", "type": "application/json"},
            {
                "rel": "collection",
                "href": f"{self.stac}/collections/{cid}",
                "type": "application/json",
            },
            {"rel": "root", "href": f"{self.stac}/", "type": "application/json"},
            {"rel": "alternate", "href": run, "type": "text/html", "title": "Review page"},
            *keep,
        ]
        for key, asset in (out.get("assets") or {}).items():
            asset["candela:href"] = asset.get("href")
            asset["href"] = f"{run}/download/{quote(out['id'], safe='')}/{quote(key, safe='')}"
        return out

    def item_collection(
        self,
        rows: list[tuple[str, str, dict[str, Any]]],
        total: int,
        q: Query,
        self_url: str,
        params: dict[str, Any],
        method: str = "GET",
    ) -> dict[str, Any]:
        features = [self.item(w, r, i) for w, r, i in rows]
        links: list[dict[str, Any]] = [
            {"rel": "root", "href": f"{self.stac}/", "type": "application/json"},
            {"rel": "self", "href": self_url, "type": GEOJSON},
        ]
        if q.offset + len(rows) < total:
            token = f"next:{q.offset + len(rows)}"
            if method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": self_url,
                        "type": GEOJSON,
                        "method": "POST",
                        "body": {**params, "token": token},
                        "merge": False,
                    }
                )
            else:
                query = {k: v for k, v in params.items() if v not in (None, "")}
                query["token"] = token
                links.append(
                    {"rel": "next", "href": f"{self_url}?{urlencode(query)}", "type": GEOJSON}
                )
        return {
            "type": "FeatureCollection",
            "features": features,
            "links": links,
            "numberMatched": total,
            "numberReturned": len(features),
        }
