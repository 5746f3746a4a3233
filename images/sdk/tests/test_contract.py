from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from candela_sdk.contract import Resources, Service, ServiceParams, main, params_to_argv
from candela_sdk.errors import InputError, NoDataError, OutputError


class ToyParams(ServiceParams):
    before: str = Field(description="input URI")
    bands: list[str] = Field(default_factory=lambda: ["B02", "B03"])
    threshold: float | None = None
    reflectance: bool = False
    model: Literal["cva", "irmad"] = "cva"
    aoi: dict | None = None


def _run(p: ToyParams) -> dict:
    if p.before == "missing":
        raise InputError("no such product: missing")
    if p.before == "empty":
        raise NoDataError("nothing over the AOI")
    if p.before == "readonly":
        raise OutputError("output folder is not writable")
    return {"echo": p.model_dump()}


TOY = Service(
    name="toy",
    summary="a toy",
    params=ToyParams,
    run=_run,
    command="candela-toy",
    subcommand="go",
    resources=Resources(gpu=1),
)


def test_argv_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    args = {
        "before": "s3://eodata/x.SAFE",
        "bands": ["B04", "B08"],
        "threshold": 0.4,
        "reflectance": True,
        "model": "irmad",
        "aoi": {"type": "Point", "coordinates": [0, 45]},
    }
    argv = TOY.argv_for(args)
    assert argv[:2] == ["candela-toy", "go"]
    assert argv[argv.index("--bands") + 1 : argv.index("--bands") + 3] == ["B04", "B08"]
    result_file = tmp_path / "r.json"
    monkeypatch.setenv("CANDELA_RESULT_PATH", str(result_file))
    assert main(TOY, argv[2:]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["echo"] == ToyParams.model_validate(args).model_dump()
    assert json.loads(result_file.read_text())["echo"] == out["echo"]
    assert out["outcome"] == "done" and out["service"] == "toy"


def test_defaults_are_not_repeated_on_the_command_line() -> None:
    assert params_to_argv(ToyParams(before="a")) == ["--before", "a"]


@pytest.mark.parametrize(
    ("before", "code", "outcome"),
    [("missing", 2, "bad_input"), ("empty", 3, "no_data"), ("readonly", 4, "output_error")],
)
def test_errors_map_to_exit_codes(before: str, code: int, outcome: str, capsys) -> None:
    assert main(TOY, ["--before", before]) == code
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip())["outcome"] == outcome
    assert before in captured.err or "nothing" in captured.err or "writable" in captured.err


def test_bad_parameter_names_the_field(capsys) -> None:
    assert main(TOY, ["--before", "x", "--threshold", "abc"]) == 2
    err = capsys.readouterr().err
    assert "--threshold" in err


def test_missing_required_parameter(capsys) -> None:
    assert main(TOY, []) == 2
    assert "--before" in capsys.readouterr().err


def test_unknown_parameter_is_refused() -> None:
    with pytest.raises(Exception, match="extra"):
        TOY.argv_for({"before": "a", "nope": 1})


def test_describe_exports_json_schema() -> None:
    d = TOY.describe()
    assert d["parameters"]["required"] == ["before"]
    assert d["resources"]["gpu"] == 1
    assert d["command"] == ["candela-toy", "go"]


class BoxParams(ServiceParams):
    bbox: list[float] | None = Field(None, min_length=4, max_length=4)
    names: list[str] = Field(default_factory=list)


BOX = Service(
    name="box",
    summary="a box",
    params=BoxParams,
    run=lambda p: p.model_dump(),
    command="candela-box",
)


@pytest.mark.parametrize(
    "argv",
    [
        ["--bbox", "-0.68", "44.83", "-0.56", "44.93"],
        ["--bbox=-0.68,44.83,-0.56,44.93"],
        ["--bbox", "-0.68,44.83,-0.56,44.93"],
        ["--bbox", "-0.68,44.83", "-0.56,44.93"],
    ],
)
def test_number_lists_apart_or_comma_separated(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A value starting with a minus sign (a western longitude) is a value, not an option."""
    assert main(BOX, [*argv, "--names", "a,b"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["bbox"] == [-0.68, 44.83, -0.56, 44.93]
    assert out["names"] == ["a,b"]  # only number lists are split on commas
