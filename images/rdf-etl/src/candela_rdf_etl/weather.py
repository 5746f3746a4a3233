"""Extractors: daily weather observations in their publishers' formats.

* ECA&D daily series (``RR_STAIDnnnnnn.txt``, ``TN_…``, ``TX_…``: values in 0.1 mm / 0.1 °C, quality
  flag 0 valid, 1 suspect, 9 missing) with ECA&D's ``stations.txt`` (degrees:minutes:seconds);
* NOAA GHCN-Daily CSV (``ID,DATE,ELEMENT,VALUE,M-FLAG,Q-FLAG,S-FLAG,OBS-TIME``; PRCP in 0.1 mm,
  TMIN/TMAX in 0.1 °C; a non-empty Q-FLAG failed NOAA's quality checks) with
  ``ghcnd-stations.txt`` (fixed width);
* Météo-France daily climatological CSV (``Q_33_…_RR-T-Vent.csv``: ``;``-separated,
  ``NUM_POSTE;NOM_USUEL;LAT;LON;ALTI;AAAAMMJJ;RR;QRR;TN;QTN;…;TX;QTX;…``, values in mm and °C;
  quality code 0 protected, 1 validated, 9 filtered, 2 doubtful: doubtful values are skipped).

Missing values and values flagged bad by the publisher are skipped and counted; a row that does
not fit the format is a failure (the whole source is then refused).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rdflib import Literal, URIRef
from shapely.geometry import Point

from candela_rdf_etl.model import (
    CDL,
    QUDT,
    RDF,
    RDFS,
    SOSA,
    UNIT,
    Extract,
    add_geometry,
    date,
    double,
    iri,
)
from candela_sdk import storage
from candela_sdk.errors import InputError

PROPERTY = {
    "RR": (CDL.DailyPrecipitation, UNIT.MilliM),
    "PRCP": (CDL.DailyPrecipitation, UNIT.MilliM),
    "TN": (CDL.DailyMinimumTemperature, UNIT.DEG_C),
    "TMIN": (CDL.DailyMinimumTemperature, UNIT.DEG_C),
    "TX": (CDL.DailyMaximumTemperature, UNIT.DEG_C),
    "TMAX": (CDL.DailyMaximumTemperature, UNIT.DEG_C),
}
SHORT = {
    CDL.DailyPrecipitation: "RR",
    CDL.DailyMinimumTemperature: "TN",
    CDL.DailyMaximumTemperature: "TX",
}


@dataclass
class Station:
    source: str
    ident: str
    name: str
    lon: float
    lat: float
    height: float | None = None


@dataclass
class Window:
    start: dt.date | None
    end: dt.date | None

    def keeps(self, day: dt.date) -> bool:
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


def station_iri(st: Station) -> URIRef:
    return iri("station", st.source, st.ident)


def add_station(ex: Extract, st: Station) -> URIRef:
    s = station_iri(st)
    if (s, RDF.type, CDL.WeatherStation) in ex.graph:
        return s
    ex.graph.add((s, RDF.type, CDL.WeatherStation))
    ex.graph.add((s, RDF.type, SOSA.Platform))
    ex.graph.add((s, CDL.stationId, Literal(st.ident)))
    ex.graph.add((s, RDFS.label, Literal(st.name)))
    add_geometry(ex.graph, s, Point(round(st.lon, 6), round(st.lat, 6)).wkt)
    ex.extra.setdefault("stations", []).append((s, st.lon, st.lat))
    return s


def add_observation(
    ex: Extract,
    station: URIRef,
    st: Station,
    prop: URIRef,
    unit: URIRef,
    day: dt.date,
    value: float,
) -> None:
    g = ex.graph
    o = iri("observation", st.source, st.ident, SHORT[prop], day.isoformat())
    g.add((o, RDF.type, CDL.WeatherObservation))
    g.add((o, SOSA.hasFeatureOfInterest, station))
    g.add((o, SOSA.observedProperty, prop))
    g.add((o, CDL.observationDate, date(day)))
    g.add((o, SOSA.hasSimpleResult, double(value)))
    g.add((o, QUDT.unit, unit))


def _day(text: str) -> dt.date:
    return dt.datetime.strptime(text.strip(), "%Y%m%d").date()


# --- ECA&D ---------------------------------------------------------------------------------


def _dms(text: str) -> float:
    m = re.fullmatch(r"\s*([+-])(\d+):(\d+):(\d+)\s*", text)
    if not m:
        raise ValueError(f"not a ±D:M:S coordinate: {text!r}")
    value = int(m[2]) + int(m[3]) / 60 + int(m[4]) / 3600
    return -value if m[1] == "-" else value


def ecad_stations(text: str) -> dict[str, Station]:
    out: dict[str, Station] = {}
    header = False
    for line in text.splitlines():
        if line.replace(" ", "").startswith("STAID,STANAME"):
            header = True
            continue
        if not header or not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6:
            continue
        out[parts[0]] = Station(
            "ecad",
            parts[0],
            parts[1],
            _dms(parts[4]),
            _dms(parts[3]),
            float(parts[5]) if parts[5] else None,
        )
    return out


def extract_ecad(ex: Extract, inputs: list[str], stations_uri: str | None, window: Window) -> None:
    for uri in inputs:
        text = storage.read_text(uri)
        lines = text.splitlines()
        head = next(
            (
                i
                for i, ln in enumerate(lines)
                if ln.replace(" ", "").startswith("STAID,SOUID,DATE,")
            ),
            None,
        )
        if head is None:
            raise InputError(
                f"{uri}: not an ECA&D daily series (no 'STAID, SOUID, DATE, …' header)"
            )
        cols = [c.strip() for c in lines[head].split(",")]
        element = cols[3] if len(cols) == 5 and cols[4] == f"Q_{cols[3]}" else None
        if element not in PROPERTY:
            raise InputError(
                f"{uri}: unexpected columns {cols} (want STAID, SOUID, DATE, RR|TN|TX, Q_…)"
            )
        prop, unit = PROPERTY[element]
        st_uri = stations_uri or uri.rsplit("/", 1)[0] + "/stations.txt"
        try:
            stations = ecad_stations(storage.read_text(st_uri))
        except OSError as exc:
            raise InputError(f"{uri}: the ECA&D station list is needed ({st_uri}): {exc}") from None
        node: URIRef | None = None
        for n, line in enumerate(lines[head + 1 :], start=head + 2):
            if not line.strip():
                continue
            ex.rows += 1
            parts = [p.strip() for p in line.split(",")]
            try:
                if len(parts) != 5:
                    raise ValueError(f"{len(parts)} fields instead of 5")
                staid, day, raw, flag = parts[0], _day(parts[2]), int(parts[3]), int(parts[4])
            except ValueError as exc:
                ex.fail(f"{uri.rsplit('/', 1)[-1]} line {n}", str(exc))
                continue
            if staid not in stations:
                ex.fail(f"line {n}", f"station {staid} is not in {st_uri}")
                continue
            if not window.keeps(day):
                continue
            if flag == 9 or raw == -9999:
                ex.skip("missing")
                continue
            if flag != 0:
                ex.skip("suspect (quality flag 1)")
                continue
            st = stations[staid]
            node = node or add_station(ex, st)
            add_observation(ex, node, st, prop, unit, day, raw / 10.0)


# --- GHCN-Daily ----------------------------------------------------------------------------


def ghcn_stations(text: str) -> dict[str, Station]:
    """``ghcnd-stations.txt``: ID 1-11, LATITUDE 13-20, LONGITUDE 22-30, ELEVATION 32-37, STATE
    39-40, NAME 42-71."""
    out = {}
    for line in text.splitlines():
        if len(line) < 41:
            continue
        ident = line[0:11].strip()
        out[ident] = Station(
            "ghcn",
            ident,
            line[41:71].strip() or ident,
            float(line[21:30]),
            float(line[12:20]),
            float(line[31:37]) if line[31:37].strip() else None,
        )
    return out


def extract_ghcn(ex: Extract, inputs: list[str], stations_uri: str | None, window: Window) -> None:
    if not stations_uri:
        raise InputError("weather-ghcn needs --stations (NOAA's ghcnd-stations.txt)")
    stations = ghcn_stations(storage.read_text(stations_uri))
    nodes: dict[str, URIRef] = {}
    for uri in inputs:
        reader: Iterable[list[str]] = csv.reader(io.StringIO(storage.read_text(uri)))
        for n, row in _rows(reader, uri, 1):
            if not row or row[0].startswith("#") or row[0] == "ID":
                continue
            ex.rows += 1
            try:
                if len(row) < 4:
                    raise ValueError(f"{len(row)} fields, want at least ID,DATE,ELEMENT,VALUE")
                ident, day, element, raw = row[0].strip(), _day(row[1]), row[2].strip(), int(row[3])
            except ValueError as exc:
                ex.fail(f"{uri.rsplit('/', 1)[-1]} line {n}", str(exc))
                continue
            if ident not in stations:
                ex.fail(f"line {n}", f"station {ident} is not in {stations_uri}")
                continue
            if element not in PROPERTY:
                ex.skip(f"element {element} not mapped")
                continue
            if not window.keeps(day):
                continue
            if raw == -9999:
                ex.skip("missing")
                continue
            if len(row) > 5 and row[5].strip():
                ex.skip("failed NOAA quality check (Q-FLAG)")
                continue
            st = stations[ident]
            nodes.setdefault(ident, add_station(ex, st))
            prop, unit = PROPERTY[element]
            add_observation(ex, nodes[ident], st, prop, unit, day, raw / 10.0)


def _rows(reader: Iterable[Any], uri: str, start: int) -> Iterator[tuple[int, Any]]:
    try:
        yield from enumerate(reader, start=start)
    except csv.Error as exc:
        raise InputError(f"{uri}: not a CSV file in the expected layout: {exc}") from None


# --- Météo-France --------------------------------------------------------------------------

MF_REQUIRED = ("NUM_POSTE", "NOM_USUEL", "LAT", "LON", "AAAAMMJJ")
MF_VALUES = (("RR", "QRR"), ("TN", "QTN"), ("TX", "QTX"))


def _mf_float(text: str) -> float | None:
    text = text.strip().replace(",", ".")
    return float(text) if text else None


def extract_meteofrance(ex: Extract, inputs: list[str], window: Window) -> None:
    for uri in inputs:
        text = storage.read_text(uri)
        lines = text.splitlines(keepends=True)
        comments = 0
        while comments < len(lines) and lines[comments].startswith("#"):
            comments += 1  # a fixture's header says so; the publisher's files have none
        reader = csv.DictReader(io.StringIO("".join(lines[comments:])), delimiter=";")
        try:
            fields = [f.strip() for f in (reader.fieldnames or [])]
        except csv.Error as exc:
            raise InputError(f"{uri}: not a Météo-France daily CSV: {exc}") from None
        missing = [c for c in MF_REQUIRED if c not in fields]
        if missing or not any(v in fields for v, _ in MF_VALUES):
            raise InputError(
                f"{uri}: not a Météo-France daily CSV: missing columns {missing or ['RR|TN|TX']}"
                f" (found {fields[:8]})"
            )
        nodes: dict[str, URIRef] = {}
        for n, raw_row in _rows(reader, uri, comments + 2):
            row = {k.strip(): (v or "") for k, v in raw_row.items() if k}
            ex.rows += 1
            try:
                day = _day(row["AAAAMMJJ"])
                ident = row["NUM_POSTE"].strip()
                lat, lon = _mf_float(row["LAT"]), _mf_float(row["LON"])
                if not ident or lat is None or lon is None:
                    raise ValueError("NUM_POSTE, LAT and LON are required")
                values = {v: _mf_float(row.get(v, "")) for v, _ in MF_VALUES}
            except ValueError as exc:
                ex.fail(f"{uri.rsplit('/', 1)[-1]} line {n}", str(exc))
                continue
            if not window.keeps(day):
                continue
            st = Station("meteofrance", ident, row["NOM_USUEL"].strip() or ident, lon, lat)
            for element, qcol in MF_VALUES:
                value = values[element]
                if value is None:
                    ex.skip("missing")
                    continue
                if row.get(qcol, "").strip() == "2":  # 0 protected, 1 validated, 9 filtered
                    ex.skip("doubtful (quality code 2)")
                    continue
                nodes.setdefault(ident, add_station(ex, st))
                prop, unit = PROPERTY[element]
                add_observation(ex, nodes[ident], st, prop, unit, day, value)
