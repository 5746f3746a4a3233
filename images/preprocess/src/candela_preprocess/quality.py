"""The quality gate: Great Expectations 1.x expectations on every output stack.

The gate stays cheap on a full tile: while the stack is written block by block,
:class:`PixelSample` keeps every ``step``-th pixel of every ``step``-th row (on a grid fixed to
the output, so the sample does not depend on the block size; ``step`` is chosen so that about
``gate_sample_pixels`` pixels are kept). The gate's expectations (GX expectation types and
arguments, :func:`expectations`) are

* the ``stack`` suite on that sample (one column per band, named from the band descriptions
  read back from the written raster, nodata as null, plus the ``valid`` column): band count and
  order, value range per band (``mostly`` the in-range share), share of valid pixels;
* with ``--grid-like``, the ``grid`` suite on one row per dataset of the pair (CRS, the six
  transform terms, width, height, as written): every column has exactly one distinct value.

Cost in proportion: importing Great Expectations takes seconds (pandas, altair, …), more than
preprocessing a demo stack. So the expectations are first evaluated by :func:`evaluate`, which
computes GX's own metrics for these five expectation types (observed value, unexpected percent
of the non-null values, ``mostly``) with numpy in milliseconds. Only when an expectation is
unmet, or when the report is asked for (``--quality-report``), does GX itself validate the same
suites (one ephemeral context per process, reused) and build its Data Docs; its verdict is then
the gate's. A test checks that both agree on passing and failing samples. Without Data Docs the
report is a small static page of the same checks (``<output stem>_quality/index.html``, plus
``checks.json``), so the stack's STAC item always links a report.

A failing gate raises :class:`QualityGateError` (exit code 2, outcome ``quality_gate_failed``)
with a one-line summary of the unmet expectations; nothing else is published.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from candela_sdk.errors import InputError

log = logging.getLogger(__name__)

SITE = "candela_quality"


class QualityGateError(InputError):
    """The output stack does not meet the quality gate's expectations (exit code 2)."""

    outcome = "quality_gate_failed"


@dataclass(frozen=True)
class GateThresholds:
    min_valid_fraction: float
    min_value: int
    max_value: int
    in_range_fraction: float
    sample_pixels: int


def sample_step(width: int, height: int, target: int) -> int:
    """Every ``step``-th row and column keeps about ``target`` pixels (at least 1)."""
    return max(1, math.floor(math.sqrt(width * height / max(target, 1))))


@dataclass
class PixelSample:
    """A regular pixel sample of the stack, collected window by window."""

    step: int
    values: list[np.ndarray] = field(default_factory=list)
    valid: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        data: np.ndarray,
        valid: np.ndarray,
        col_off: int,
        row_off: int,
        inside: np.ndarray | None = None,
    ) -> None:
        """Sample a window; ``inside``: only its pixels where True (a polygon AOI's)."""
        r0 = (-row_off) % self.step
        c0 = (-col_off) % self.step
        sub = data[:, r0 :: self.step, c0 :: self.step].reshape(data.shape[0], -1)
        ok = valid[r0 :: self.step, c0 :: self.step].reshape(-1)
        if inside is not None:
            keep = inside[r0 :: self.step, c0 :: self.step].reshape(-1)
            sub, ok = sub[:, keep], ok[keep]
        self.values.append(sub.copy())
        self.valid.append(ok.copy())

    def table(self, columns: list[str], nodata: float | int | None) -> dict[str, np.ndarray]:
        """The sample as columns (band values as float32, nodata as NaN; then ``valid``)."""
        values = np.concatenate(self.values, axis=1).astype("float32")
        if nodata is not None:
            values[values == nodata] = np.nan
        table = {name: values[i] for i, name in enumerate(columns)}
        table["valid"] = np.concatenate(self.valid).astype("uint8")
        return table

    def frame(self, columns: list[str], nodata: float | int | None) -> Any:
        import pandas as pd

        return pd.DataFrame(self.table(columns, nodata))


@dataclass
class GateResult:
    passed: bool
    summary: dict[str, Any]
    failures: list[str]


@dataclass(frozen=True)
class Expectation:
    """One expectation of the gate: its suite, GX expectation type and arguments."""

    suite: str
    type: str
    kwargs: dict[str, Any]


def expectations(
    columns: list[str],
    bands: list[str],
    thresholds: GateThresholds,
    grid_columns: list[str] | None,
) -> list[Expectation]:
    """The gate's expectations (the ``stack`` suite, and the ``grid`` suite for a pair)."""
    out = [
        Expectation("stack", "expect_table_column_count_to_equal", {"value": len(bands) + 1}),
        Expectation(
            "stack",
            "expect_table_columns_to_match_ordered_list",
            {"column_list": [*bands, "valid"]},
        ),
    ]
    out += [
        Expectation(
            "stack",
            "expect_column_values_to_be_between",
            {
                "column": band,
                "min_value": thresholds.min_value,
                "max_value": thresholds.max_value,
                "mostly": thresholds.in_range_fraction,
            },
        )
        for band in columns
    ]
    out.append(
        Expectation(
            "stack",
            "expect_column_mean_to_be_between",
            {"column": "valid", "min_value": thresholds.min_valid_fraction, "max_value": 1},
        )
    )
    for col in grid_columns or []:
        if col != "dataset":
            out.append(
                Expectation(
                    "grid",
                    "expect_column_unique_value_count_to_be_between",
                    {"column": col, "min_value": 1, "max_value": 1},
                )
            )
    return out


Table = dict[str, Any]  # column name -> values (numpy array or list), in column order


def columns_of(rows: list[dict[str, Any]]) -> Table:
    """Rows (dicts) as a :data:`Table`."""
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k not in names]
    return {n: [r.get(n) for r in rows] for n in names}


def evaluate(exp: Expectation, table: Table) -> dict[str, Any]:
    """One expectation on a table, with GX's metrics and verdict, computed here (numpy: no
    pandas, no GX import)."""
    kw = exp.kwargs
    check: dict[str, Any] = {"suite": exp.suite, "expectation": exp.type, "success": False}
    if "column" in kw:
        check["column"] = kw["column"]
        if kw["column"] not in table:
            check["error"] = f'The column "{kw["column"]}" in BatchData does not exist.'
            return check
    if exp.type == "expect_table_column_count_to_equal":
        check["observed"] = len(table)
        check["success"] = check["observed"] == kw["value"]
    elif exp.type == "expect_table_columns_to_match_ordered_list":
        check["observed"] = [str(c) for c in table]
        check["success"] = check["observed"] == list(kw["column_list"])
    elif exp.type == "expect_column_values_to_be_between":
        values = np.asarray(table[kw["column"]], dtype="float64")
        present = values[~np.isnan(values)]
        unexpected = int(
            np.count_nonzero((present < kw["min_value"]) | (present > kw["max_value"]))
        )
        share = unexpected / len(present) if len(present) else 0.0
        check["unexpected_percent"] = round(100.0 * share, 4)
        check["success"] = bool(1.0 - share >= kw.get("mostly", 1.0))
    elif exp.type == "expect_column_mean_to_be_between":
        values = np.asarray(table[kw["column"]], dtype="float64")
        present = values[~np.isnan(values)]
        mean = float(present.mean()) if len(present) else None
        check["observed"] = None if mean is None else _plain(mean)
        check["success"] = mean is not None and kw["min_value"] <= mean <= kw["max_value"]
    elif exp.type == "expect_column_unique_value_count_to_be_between":
        n = len({v for v in table[kw["column"]] if v is not None and v == v})
        check["observed"] = n
        check["success"] = kw["min_value"] <= n <= kw["max_value"]
    else:  # pragma: no cover - only the types above are declared by expectations()
        raise ValueError(f"no evaluation of {exp.type}")
    return check


def run_gate(
    *,
    sample: PixelSample,
    columns: list[str],
    bands: list[str],
    nodata: float | int | None,
    thresholds: GateThresholds,
    grids: list[dict[str, Any]] | None,
    docs_dir: Path,
    report: bool = False,
) -> GateResult:
    """Validate the sample (and the pair's grids): evaluated here; by GX, with its Data Docs
    built into ``docs_dir``, when an expectation is unmet or ``report`` is asked for. Else
    ``docs_dir`` gets the small static report of the checks."""
    stack = sample.table(columns, nodata)
    grid = columns_of(grids) if grids is not None else None
    exps = expectations(columns, bands, thresholds, list(grid) if grid is not None else None)
    tables: dict[str, Table | None] = {"stack": stack, "grid": grid}
    checks = [evaluate(e, tables[e.suite] or {}) for e in exps]
    validated_by = "candela"
    if report or not all(c["success"] for c in checks):
        checks = _validate_with_gx(exps, tables, docs_dir)
        validated_by = "great_expectations"
    failures = [_failure_text(c, thresholds) for c in checks if not c["success"]]
    summary = {
        "passed": not failures,
        "expectations": len(checks),
        "unmet": len(failures),
        "sample_pixels": len(stack["valid"]),
        "sample_step": sample.step,
        "validated_by": validated_by,
        "thresholds": {
            "min_valid_fraction": thresholds.min_valid_fraction,
            "value_range": [thresholds.min_value, thresholds.max_value],
            "in_range_fraction": thresholds.in_range_fraction,
        },
        "checks": checks,
    }
    if validated_by != "great_expectations":
        _write_static_report(docs_dir, summary)
    return GateResult(passed=not failures, summary=summary, failures=failures)


_GX: dict[str, Any] = {}  # the process's one ephemeral GX context, and a counter of its uses


def _gx_context() -> Any:
    """Great Expectations, imported and its ephemeral context made once per process, quiet."""
    if "ctx" not in _GX:
        # settings of the GX library (not ours): written before GX reads them at import
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.enable_analytics(False)
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        _GX.update(ctx=ctx, source=ctx.data_sources.add_pandas("candela"), n=0)
    _GX["n"] += 1
    return _GX["ctx"]


def _validate_with_gx(
    exps: list[Expectation], tables: dict[str, Table | None], docs_dir: Path
) -> list[dict[str, Any]]:
    """The same expectations validated by GX (one ephemeral context per process); its Data
    Docs into ``docs_dir``."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    ctx = _gx_context()
    n = _GX["n"]
    site = f"{SITE}_{n}"
    ctx.add_data_docs_site(
        site_name=site,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    classes = {
        "expect_table_column_count_to_equal": gxe.ExpectTableColumnCountToEqual,
        "expect_table_columns_to_match_ordered_list": gxe.ExpectTableColumnsToMatchOrderedList,
        "expect_column_values_to_be_between": gxe.ExpectColumnValuesToBeBetween,
        "expect_column_mean_to_be_between": gxe.ExpectColumnMeanToBeBetween,
        "expect_column_unique_value_count_to_be_between": (
            gxe.ExpectColumnUniqueValueCountToBeBetween
        ),
    }
    checks: list[dict[str, Any]] = []
    for name in ("stack", "grid"):
        mine = [e for e in exps if e.suite == name]
        if not mine:
            continue
        suite = ctx.suites.add(gx.ExpectationSuite(name=name if n == 1 else f"{name}_{n}"))
        for e in mine:
            suite.add_expectation(classes[e.type](**e.kwargs))
        asset = _GX["source"].add_dataframe_asset(f"{name}_{n}")
        batch = asset.add_batch_definition_whole_dataframe(f"{name}_{n}")
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}_{n}", data=batch, suite=suite)
        )
        checkpoint = ctx.checkpoints.add(
            gx.Checkpoint(
                name=f"{name}_gate_{n}",
                validation_definitions=[vd],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[site])],
                result_format="SUMMARY",
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": pd.DataFrame(tables[name])})
        for vr in result.run_results.values():
            checks += [_check(name, r) for r in vr.results]
    return checks


def _write_static_report(docs_dir: Path, summary: dict[str, Any]) -> None:
    """The gate's checks as a small static page (and JSON): the report when GX was not needed."""
    import html
    import json

    docs_dir.mkdir(parents=True, exist_ok=True)
    (docs_dir / "checks.json").write_text(json.dumps(summary, indent=2, default=str))
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(c["suite"]),
            html.escape(c["expectation"]),
            html.escape(str(c.get("column", ""))),
            html.escape(str(c.get("observed", c.get("unexpected_percent", "")))),
            "met" if c["success"] else "UNMET",
        )
        for c in summary["checks"]
    )
    verdict = "passed" if summary["passed"] else "failed"
    (docs_dir / "index.html").write_text(
        "<!doctype html><meta charset=utf-8><title>Quality gate</title>"
        f"<h1>Quality gate {verdict}</h1><p>{summary['expectations'] - summary['unmet']} of "
        f"{summary['expectations']} expectations met on {summary['sample_pixels']} sampled "
        "pixels (evaluated without Great Expectations: its Data Docs are built when an "
        "expectation is unmet, or with <code>--quality-report</code>).</p>"
        "<table border=1 cellpadding=3><tr><th>suite</th><th>expectation</th><th>column</th>"
        f"<th>observed (value / % unexpected)</th><th>verdict</th></tr>{rows}</table>"
        "<p><a href=checks.json>checks.json</a></p>"
    )


def _check(suite: str, r: Any) -> dict[str, Any]:
    cfg = r.expectation_config
    res = r.result or {}
    check: dict[str, Any] = {
        "suite": suite,
        "expectation": cfg.type,
        "success": bool(r.success),
    }
    column = cfg.kwargs.get("column")
    if column is not None:
        check["column"] = column
    if "observed_value" in res:
        check["observed"] = _plain(res["observed_value"])
    if "unexpected_percent" in res and res["unexpected_percent"] is not None:
        check["unexpected_percent"] = round(float(res["unexpected_percent"]), 4)
    if r.exception_info and r.exception_info.get("raised_exception"):
        check["error"] = str(r.exception_info.get("exception_message"))[:200]
    return check


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _failure_text(check: dict[str, Any], t: GateThresholds) -> str:
    kind = check["expectation"]
    col = check.get("column")
    if check.get("error"):
        return f"{kind} on {col or 'the table'} raised: {check['error']}"
    if kind == "expect_column_values_to_be_between":
        inside = 100 - check.get("unexpected_percent", 100.0)
        return (
            f"{col}: {inside:.1f}% of valid pixels in [{t.min_value}, {t.max_value}] "
            f"(at least {t.in_range_fraction:.0%} required)"
        )
    if kind == "expect_column_mean_to_be_between" and col == "valid":
        return (
            f"valid pixels {float(check.get('observed') or 0):.1%} of the sample "
            f"(at least {t.min_valid_fraction:.0%} required)"
        )
    if check["suite"] == "grid":
        return f"grids differ in {col}: {check.get('observed')} distinct values"
    return f"{kind} failed (observed {check.get('observed')})"
