"""The quality gate: Great Expectations 1.x expectations on every output stack.

The gate stays cheap on a full tile: while the stack is written block by block,
:class:`PixelSample` keeps every ``step``-th pixel of every ``step``-th row (on a grid fixed to
the output, so the sample does not depend on the block size; ``step`` is chosen so that about
``gate_sample_pixels`` pixels are kept). Great Expectations then validates

* the ``stack`` suite on that sample (one column per band, named from the band descriptions
  read back from the written raster, nodata as null, plus the ``valid`` column): band count and
  order, value range per band (``mostly`` the in-range share), share of valid pixels;
* with ``--grid-like``, the ``grid`` suite on one row per dataset of the pair (CRS, the six
  transform terms, width, height, as written): every column has exactly one distinct value.

The validation results are rendered as GX Data Docs (static HTML) into a folder published next
to the output as ``<output stem>_quality/`` (``index.html``), whether the gate passes or not. A
failing gate raises :class:`QualityGateError` (exit code 2, outcome ``quality_gate_failed``) with
a one-line summary of the unmet expectations; nothing else is published.

Great Expectations is heavy (pandas, altair, …; seconds to import): it is imported only here,
lazily, after the pixels are processed (importing it in a background thread meanwhile was
measured slower: the import holds the GIL the block loop needs between GDAL calls).
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

    def add(self, data: np.ndarray, valid: np.ndarray, col_off: int, row_off: int) -> None:
        r0 = (-row_off) % self.step
        c0 = (-col_off) % self.step
        sub = data[:, r0 :: self.step, c0 :: self.step]
        self.values.append(sub.reshape(sub.shape[0], -1).copy())
        self.valid.append(valid[r0 :: self.step, c0 :: self.step].reshape(-1).copy())

    def frame(self, columns: list[str], nodata: float | int | None) -> Any:
        import pandas as pd

        values = np.concatenate(self.values, axis=1).astype("float32")
        if nodata is not None:
            values[values == nodata] = np.nan
        df = pd.DataFrame({name: values[i] for i, name in enumerate(columns)})
        df["valid"] = np.concatenate(self.valid).astype("uint8")
        return df


@dataclass
class GateResult:
    passed: bool
    summary: dict[str, Any]
    failures: list[str]


def run_gate(
    *,
    sample: PixelSample,
    columns: list[str],
    bands: list[str],
    nodata: float | int | None,
    thresholds: GateThresholds,
    grids: list[dict[str, Any]] | None,
    docs_dir: Path,
) -> GateResult:
    """Validate the sample (and the pair's grids) with GX; Data Docs are built into docs_dir."""
    # a setting of the GX library (not one of ours): written before GX reads it at import
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.enable_analytics(False)
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.add_data_docs_site(
        site_name=SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = ctx.data_sources.add_pandas("candela")

    stack_suite = gx.ExpectationSuite(name="stack")
    stack_suite.add_expectation(gxe.ExpectTableColumnCountToEqual(value=len(bands) + 1))
    stack_suite.add_expectation(
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*bands, "valid"])
    )
    for band in columns:
        stack_suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(
                column=band,
                min_value=thresholds.min_value,
                max_value=thresholds.max_value,
                mostly=thresholds.in_range_fraction,
            )
        )
    stack_suite.add_expectation(
        gxe.ExpectColumnMeanToBeBetween(
            column="valid", min_value=thresholds.min_valid_fraction, max_value=1
        )
    )
    df = sample.frame(columns, nodata)
    runs = [("stack", stack_suite, df)]

    if grids is not None:
        grid_suite = gx.ExpectationSuite(name="grid")
        grid_df = pd.DataFrame(grids)
        for col in grid_df.columns:
            if col == "dataset":
                continue
            grid_suite.add_expectation(
                gxe.ExpectColumnUniqueValueCountToBeBetween(column=col, min_value=1, max_value=1)
            )
        runs.append(("grid", grid_suite, grid_df))

    checks: list[dict[str, Any]] = []
    failures: list[str] = []
    for name, suite, frame in runs:
        suite = ctx.suites.add(suite)
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        checkpoint = ctx.checkpoints.add(
            gx.Checkpoint(
                name=f"{name}_gate",
                validation_definitions=[vd],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[SITE])],
                result_format="SUMMARY",
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        for vr in result.run_results.values():
            for r in vr.results:
                check = _check(name, r)
                checks.append(check)
                if not check["success"]:
                    failures.append(_failure_text(check, thresholds))
    summary = {
        "passed": not failures,
        "expectations": len(checks),
        "unmet": len(failures),
        "sample_pixels": len(df),
        "sample_step": sample.step,
        "thresholds": {
            "min_valid_fraction": thresholds.min_valid_fraction,
            "value_range": [thresholds.min_value, thresholds.max_value],
            "in_range_fraction": thresholds.in_range_fraction,
        },
        "checks": checks,
    }
    return GateResult(passed=not failures, summary=summary, failures=failures)


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
