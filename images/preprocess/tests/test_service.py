"""The service declaration: catalogue entry, command line round trip, entry point."""

from __future__ import annotations

from importlib.metadata import entry_points

from candela_preprocess.service import SERVICE, PreprocessParams
from candela_sdk.contract import build_parser


def test_entry_point_registered() -> None:
    (ep,) = [e for e in entry_points(group="candela.services") if e.name == "preprocess"]
    assert ep.load() is SERVICE


def test_describe() -> None:
    d = SERVICE.describe()
    assert d["command"] == ["candela-preprocess"]
    props = d["parameters"]["properties"]
    assert {
        "product",
        "output",
        "aoi",
        "grid_like",
        "bands",
        "resampling",
        "reflectance",
        "block_size",
    } <= set(props)
    assert props["bands"]["default"][:4] == ["B02", "B03", "B04", "B08"]
    assert set(d["parameters"]["required"]) == {"product", "output"}


def test_argv_round_trip() -> None:
    args = {
        "product": "s3://eodata/S2A.SAFE",
        "output": "s3://bucket/out.tif",
        "bands": ["b2", "B8A"],
        "reflectance": True,
        "grid_like": "s3://bucket/t1.tif",
        "aoi": '{"type":"Point","coordinates":[0,45]}',
    }
    argv = SERVICE.argv_for(args)
    assert argv[0] == "candela-preprocess"
    assert argv[argv.index("--bands") + 1 : argv.index("--bands") + 3] == ["B02", "B8A"]
    ns = build_parser(SERVICE).parse_args(argv[1:])
    raw = {k: v for k, v in vars(ns).items() if k != "log_level" and v is not None}
    assert PreprocessParams.model_validate(raw) == PreprocessParams.model_validate(args)
