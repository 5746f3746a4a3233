"""The typed run configurations (``candela.workflows``) and the one rule for a model name
(``candela_sdk.registry``): the DAGs' Params are the models' schemas, every conf the platform
builds passes the model, bad confs are refused naming the field, and the DAG, the CLI and the
OGC API accept exactly the same model names with the same message."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from candela.workflows import (
    MODEL_NAME_PATTERN,
    BadRunConf,
    ChangeDetectionConf,
    RunServiceConf,
    param_schemas,
    validate_conf,
)

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
sys.path.insert(0, str(REPO / "plugins"))

WORKFLOW = "s2_change_detection"


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{WORKFLOW}.py"))
    bag.process_file(str(DAGS / "run_service.py"))
    assert bag.import_errors == {}
    return bag.dags


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model registry with one registered model, ``my-enc`` (its metadata is all the name
    rule reads); CANDELA_HOME points at an empty folder (no platform)."""
    root = tmp_path / "registry"
    (root / "my-enc").mkdir(parents=True)
    (root / "my-enc" / "metadata.json").write_text(json.dumps({"name": "my-enc"}))
    monkeypatch.setenv("CANDELA_MODEL_REGISTRY", str(root))
    monkeypatch.setenv("CANDELA_HOME", str(tmp_path / "home"))
    for key in ("CANDELA_DATABASE_URL", "CANDELA_STORAGE_ROOT", "CANDELA_AIRFLOW_URL"):
        monkeypatch.delenv(key, raising=False)
    return root


def _rest_params(dag: Any) -> dict[str, Any]:
    """The DAG's params as ``GET /api/v2/dags/{id}/details`` returns them."""
    return {k: dag.params.get_param(k).dump() for k in dag.params.keys()}


# --- the DAGs' Params are the models' schemas ------------------------------------------------


@pytest.mark.parametrize(("dag_id", "model"), [(WORKFLOW, ChangeDetectionConf), ("run_service", RunServiceConf)])  # fmt: skip
def test_dag_params_are_the_model_schema(dags: dict[str, Any], dag_id: str, model: Any) -> None:
    params = dags[dag_id].params
    expected = param_schemas(model)
    assert sorted(params.keys()) == sorted(expected) == sorted(model.model_fields)
    for name, schema in expected.items():
        param = params.get_param(name)
        schema = dict(schema)
        assert param.value == schema.pop("default"), name
        assert param.description == schema.pop("description") and param.description, name
        assert param.schema == schema, name
        assert schema["title"], name
        # the default passes the Param's schema and the model (defaults identical everywhere)
        param.resolve()
    if model is ChangeDetectionConf:  # (run_service's default arguments are no run)
        model.model_validate({})


def test_change_detection_schema_carries_the_rules() -> None:
    p = param_schemas(ChangeDetectionConf)
    assert p["collection"]["enum"] == ["sentinel-2-l1c", "sentinel-2-l2a"]
    assert p["bbox"]["items"] == {"type": "number", "minimum": -180, "maximum": 180}
    assert p["bbox"]["minItems"] == p["bbox"]["maxItems"] == 4
    assert p["start"]["format"] == p["end"]["format"] == "date"
    assert (p["max_cloud"]["minimum"], p["max_cloud"]["maximum"]) == (0, 100)
    assert p["tile"]["pattern"] == "^T[0-9]{2}[A-Z]{3}$"
    assert p["threshold"]["exclusiveMinimum"] == 0 and p["threshold"]["exclusiveMaximum"] == 1
    # the model name: a syntax, never an enum (registered models are names too)
    assert "enum" not in p["model"] and p["model"]["pattern"] == MODEL_NAME_PATTERN
    assert [p[k]["default"] for k in ("start", "end", "max_cloud", "model", "threshold")] == [
        "2016-01-01",
        "2017-12-31",
        100,
        "encoder",
        "auto",
    ]


def test_ogc_description_is_the_model_schema(dags: dict[str, Any]) -> None:
    from ogc_api_processes_client.models import Process

    from candela_ogc import ogc

    dag = {"dag_id": WORKFLOW, "params": _rest_params(dags[WORKFLOW]), "tags": []}
    desc = ogc.workflow_process("http://x/ogc", dag, full=True)
    Process.from_dict(desc)
    inputs = desc["inputs"]
    assert set(inputs) == set(ChangeDetectionConf.model_fields)
    assert inputs["max_cloud"]["title"] == "Maximum cloud cover"
    assert inputs["bbox"]["schema"]["nullable"] is True
    assert "enum" not in inputs["model"]["schema"]
    threshold = inputs["threshold"]["schema"]
    assert threshold["minimum"] == 0 and threshold["exclusiveMinimum"] is True  # OpenAPI 3.0


def test_the_trigger_form_has_labels_and_sends_the_aoi_it_shows(dags: dict[str, Any]) -> None:
    """Airflow 3's trigger form labels a field with its ``title`` (else the raw id) and shows an
    object field without a value as ``{}`` while sending null: the AOI's default is ``{}``,
    which the model reads as no AOI, so a run from the form has the key of a run without."""
    from candela.runs import workflow_key

    params = dags[WORKFLOW].params
    for name in ChangeDetectionConf.model_fields:
        title = params.get_param(name).schema["title"]
        assert title and title != name and "_" not in title, name
    assert params.get_param("tile_size_km").schema["title"] == "Piece size (km)"
    assert params.get_param("aoi").value == {}
    params.get_param("aoi").resolve()  # the default passes the Param's own schema
    assert ChangeDetectionConf.checked({"aoi": {}}).aoi is None
    assert workflow_key(WORKFLOW, {"aoi": {}}) == workflow_key(WORKFLOW, {})
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    assert workflow_key(WORKFLOW, {"aoi": polygon}) != workflow_key(WORKFLOW, {})


# --- every conf the platform builds passes the model ----------------------------------------


def test_the_confs_the_platform_builds_validate() -> None:
    from candela.cli import DEMO_CONF
    from candela.cli_orders import plan_runs
    from candela.runs import Watch
    from tests.platform_helpers import BORDEAUX

    sys.path.insert(0, str(REPO / "examples"))
    from trigger_with_client import CONF as EXAMPLE

    watch = Watch("w", "sentinel-2-l2a", [-0.7, 44.8, -0.5, 44.9], "T30TXQ", "cva", 30.0, 5,
                  dt.date(2023, 1, 1))  # fmt: skip
    product = {"id": "a", "collection": "sentinel-2-l2a", "datetime": "2023-06-01T10:00:00Z",
               "tile": "T30TXQ", "bbox": [0, 44, 1, 45], "href": "x"}  # fmt: skip
    [(_, order)] = plan_runs([product], {"model": "irmad", "threshold": 0.4})
    confs = [DEMO_CONF, BORDEAUX, EXAMPLE, watch.conf(dt.date(2023, 6, 1)), order]
    for conf in confs:
        typed = ChangeDetectionConf.checked(conf)
        assert typed.conf() == conf  # built through the model: nothing to normalise
    assert watch.conf(dt.date(2023, 6, 1))["max_cloud"] == 30.0
    assert order["start"] == order["end"] == "2023-06-01" and order["threshold"] == 0.4
    assert DEMO_CONF["zones"].endswith("communes-33-gironde.geojson")


def test_conf_keeps_the_values_as_given() -> None:
    # the output key hashes the conf as sent: an int stays an int, a string threshold a string
    conf = ChangeDetectionConf.checked({"max_cloud": 20, "threshold": "0.3", "bbox": [0, 0, 1, 1]})
    assert conf.conf() == {"max_cloud": 20, "threshold": "0.3", "bbox": [0, 0, 1, 1]}
    assert (
        json.dumps(ChangeDetectionConf.checked({"threshold": 0.3}).conf()) == '{"threshold": 0.3}'
    )


def test_a_future_watch_is_not_due_and_a_bad_watch_is_refused() -> None:
    from candela.runs import Watch

    now = dt.datetime(2023, 6, 1, tzinfo=dt.UTC)
    assert not Watch("w", "sentinel-2-l2a", [0, 0, 1, 1], None, "cva", 100, 5,
                     dt.date(2024, 1, 1)).due(now)  # fmt: skip
    bad = Watch("w", "sentinel-2-l2a", [0, 0, 1, 1], "x; drop", "cva", 100, 5, dt.date(2023, 1, 1))
    with pytest.raises(BadRunConf, match="tile"):
        bad.conf(now.date())


# --- bad confs are refused naming the field ---------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "words"),
    [
        ({"bbox": [1, 44, 0, 45]}, ["bbox", "west 1 must be less than east 0"]),
        ({"bbox": [0, 45, 1, 44]}, ["bbox", "south 45 must be less than north 44"]),
        ({"bbox": [0, 95, 1, 96]}, ["bbox", "south 95 is outside -90..90"]),
        ({"bbox": [-200, 0, 1, 1]}, ["bbox.0", "-180"]),
        ({"bbox": [0, 0, 1]}, ["bbox", "at least 4"]),
        ({"start": "2018-01-01", "end": "2017-01-01"}, ["end", "before start"]),
        ({"start": "2018-01-01"}, ["end", "before start (2018-01-01)"]),  # against the default
        ({"start": "2016-13-01"}, ["start", "date"]),
        ({"max_cloud": 150}, ["max_cloud", "150", "maximum of 100"]),
        ({"max_cloud": "lots"}, ["max_cloud", "not a number"]),
        ({"threshold": 7}, ["threshold", "strictly between 0 and 1"]),
        ({"threshold": "0.0"}, ["threshold", "strictly between 0 and 1"]),
        ({"threshold": "high"}, ["threshold", "'auto' or a number"]),
        ({"tile": "x; drop"}, ["tile", "pattern"]),
        ({"collection": "landsat"}, ["collection"]),
        ({"model": "magic"}, ["model", "unknown change model 'magic'"]),
        ({"tile_size_km": 0}, ["tile_size_km", "minimum of 1"]),
        ({"aoi": {"coordinates": []}}, ["aoi", "GeoJSON"]),
        ({"colour": "red"}, ["colour", "unknown parameter"]),
    ],
)
def test_bad_confs_are_refused_naming_the_field(conf: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(BadRunConf) as exc:
        validate_conf(WORKFLOW, conf)
    text = str(exc.value)
    assert text.startswith(f"bad parameters for {WORKFLOW}: ")
    assert all(w in text for w in words), text


def test_run_service_conf_checks_the_service_and_its_arguments() -> None:
    with pytest.raises(BadRunConf, match="service: unknown service 'nope'"):
        validate_conf("run_service", {"service": "nope"})
    with pytest.raises(BadRunConf, match="arguments: collection: Field required"):
        validate_conf("run_service", {"service": "search", "arguments": {}})
    with pytest.raises(BadRunConf, match="unknown parameter"):
        validate_conf("run_service", {"service": "search", "arguments": {}, "extra": 1})
    ok = {"service": "search", "arguments": {"collection": "sentinel-2-l1c"}}
    assert validate_conf("run_service", ok).conf() == ok  # type: ignore[union-attr]
    assert validate_conf("some_other_dag", {"anything": 1}) is None


def test_order_with_a_bad_conf_is_refused_before_anything_is_recorded() -> None:
    from candela.cli_orders import plan_runs
    from candela_sdk.errors import InputError

    product = {"id": "a", "collection": "sentinel-2-l2a", "datetime": "2023-06-01T10:00:00Z",
               "tile": "T30TXQ", "bbox": [0, 44, 1, 45], "href": "x"}  # fmt: skip
    with pytest.raises(InputError, match="threshold"):
        plan_runs([product], {"threshold": 7})


# --- one rule for a model name: the DAG, the CLI and /ogc ---------------------------------


def _dag_path(dags: dict[str, Any], model: str) -> str | None:
    """The DAG's first task (plan_run) on ``model``: None if it goes on, else its failure."""
    from airflow.sdk.exceptions import AirflowFailException

    dag = dags[WORKFLOW]
    task = dag.get_task("plan_run")
    params = {name: dag.params[name] for name in dag.params.keys()}
    params["model"] = model
    context = {"params": params, "dag": dag, "run_id": "manual__test"}
    fn = task.python_callable
    original = fn.__globals__["get_current_context"]
    fn.__globals__["get_current_context"] = lambda: context
    try:
        out = fn()
    except AirflowFailException as exc:
        return str(exc)
    finally:
        fn.__globals__["get_current_context"] = original
    assert out["search"]["collection"] == "sentinel-2-l1c"
    return None


def _cli_path(model: str) -> str | None:
    """``candela run`` with ``model`` and no platform: None if the conf passed (it then stops
    at "not running"), else its error."""
    from typer.testing import CliRunner

    from candela.cli import app

    r = CliRunner().invoke(app, ["run", WORKFLOW, "--conf", json.dumps({"model": model})])
    assert r.exit_code == 1
    text = " ".join(r.output.split())
    if "is not running" in text:
        return None
    return text.removeprefix("error: ")


class _FakeAirflow:
    """The REST calls /ogc makes to execute a workflow, answered from the real DAG."""

    def __init__(self, dags: dict[str, Any]) -> None:
        self.dags = dags
        self.triggered: list[dict[str, Any]] = []

    async def dag_details(self, dag_id: str) -> dict[str, Any] | None:
        dag = self.dags.get(dag_id)
        if dag is None:
            return None
        return {"dag_id": dag_id, "params": _rest_params(dag), "tags": [], "is_paused": False}

    async def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        self.triggered.append(conf)
        return {"dag_id": dag_id, "dag_run_id": "manual__1", "state": "queued", "conf": conf}


def _ogc_path(dags: dict[str, Any], model: str) -> str | None:
    from fastapi.testclient import TestClient

    from candela_ogc.app import airflow, app

    fake = _FakeAirflow(dags)
    app.dependency_overrides[airflow] = lambda: fake
    try:
        r = TestClient(app).post(
            f"/processes/{WORKFLOW}/execution", json={"inputs": {"model": model}}
        )
    finally:
        app.dependency_overrides.clear()
    if r.status_code == 201:
        assert fake.triggered == [{"model": model}]
        return None
    assert r.status_code == 400 and not fake.triggered, r.text
    return str(r.json()["detail"])


def test_dag_cli_and_ogc_accept_the_same_model_names(
    dags: dict[str, Any], registry: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "CANDELA_PORT", str(closed_port)
    )  # "not running", even with an Airflow on 8080
    for name in ("my-enc", "cva", "encoder"):
        assert _dag_path(dags, name) is None, name
        assert _cli_path(name) is None, name
        assert _ogc_path(dags, name) is None, name

    refusals = {_dag_path(dags, "nosuch"), _cli_path("nosuch"), _ogc_path(dags, "nosuch")}
    assert len(refusals) == 1, refusals  # one message, word for word
    [message] = refusals
    assert message == (
        f"bad parameters for {WORKFLOW}: model: unknown change model 'nosuch': not built in "
        f"(cva, encoder, irmad) and not registered in {registry.as_uri()} "
        "(registered: my-enc; see `candela models list`)"
    )


def test_the_service_step_accepts_the_same_names(registry: Path) -> None:
    from pydantic import ValidationError

    from candela_changedetect.service import DetectParams
    from candela_sdk.registry import unknown_model_message

    base = {"before": "a.tif", "after": "b.tif", "output": "o"}
    assert DetectParams.model_validate({**base, "model": "my-enc"}).model == "my-enc"
    with pytest.raises(ValidationError) as exc:
        DetectParams.model_validate({**base, "model": "nosuch"})
    assert unknown_model_message("nosuch") in str(exc.value)
    # and /ogc's run_service path (a service process) says the same
    with pytest.raises(BadRunConf) as bad:
        validate_conf("run_service", {"service": "changedetect", "arguments": {**base, "model": "nosuch"}})  # fmt: skip
    assert unknown_model_message("nosuch") in str(bad.value)


def test_run_service_first_task_checks_the_conf(dags: dict[str, Any]) -> None:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    fn = dags["run_service"].get_task("check_arguments").python_callable
    original = fn.__globals__["get_current_context"]
    try:
        ok = {"service": "search", "arguments": {"collection": "sentinel-2-l1c"}}
        fn.__globals__["get_current_context"] = lambda: {"params": ok}
        assert fn("cpu") == [{"service": "search", "service_args": ok["arguments"]}]
        with pytest.raises(AirflowSkipException, match="runs on a CPU"):
            fn("gpu")  # run_step_gpu (GPU pool) is skipped
        # a GPU model: the step is run_step_gpu's
        pair = {"before": "a.tif", "after": "b.tif", "output": "out", "model": "encoder"}
        gpu = {"service": "changedetect", "arguments": pair}
        fn.__globals__["get_current_context"] = lambda: {"params": gpu}
        assert fn("gpu") == [{"service": "changedetect", "service_args": pair}]
        with pytest.raises(AirflowSkipException, match="runs on a GPU"):
            fn("cpu")
        bad = {"service": "search", "arguments": {"collection": "landsat"}}
        fn.__globals__["get_current_context"] = lambda: {"params": bad}
        with pytest.raises(AirflowFailException, match="bad parameters for run_service: arguments: collection"):  # fmt: skip
            fn("cpu")
    finally:
        fn.__globals__["get_current_context"] = original


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--bbox", "1", "1", "0", "0"], "bbox: west 1.0 must be less than east 0.0"),
        (["--bbox", "0", "0", "1", "1", "--tile", "x; drop"], "tile: String should match"),
        (["--bbox", "0", "0", "1", "1", "--model", "nosuch"], "model: unknown change model"),
        (["--bbox", "0", "0", "1", "1", "--collection", "landsat"], "collection: Input should be"),
    ],
)
def test_watch_add_refuses_what_its_runs_would_refuse(
    registry: Path, extra: list[str], words: str
) -> None:
    from typer.testing import CliRunner

    from candela.cli import app

    r = CliRunner().invoke(app, ["watch", "add", "w", *extra])
    assert r.exit_code == 1 and words in " ".join(r.output.split()), r.output
