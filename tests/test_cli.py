"""The candela CLI on bad input, without a running platform."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CANDELA = [sys.executable, "-m", "candela.cli"]


def candela(
    *args: str, home: Path, port: int | None = None, **kw
) -> subprocess.CompletedProcess[str]:
    env = {"CANDELA_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home.parent)}
    if port is not None:  # where the CLI looks for the platform (default 8080)
        env["CANDELA_PORT"] = str(port)
    return subprocess.run(
        [*CANDELA, *args], capture_output=True, text=True, env=env, timeout=120, **kw
    )


def test_down_with_nothing_running(tmp_path: Path) -> None:
    r = candela("down", home=tmp_path / "home")
    assert r.returncode == 0
    assert "nothing to stop" in r.stdout


def test_run_when_platform_is_down(tmp_path: Path, closed_port: int) -> None:
    r = candela("run", "s2_change_detection", home=tmp_path / "home", port=closed_port)
    assert r.returncode == 1
    assert "not running" in r.stderr and "candela up" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ("{bad", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("@/nonexistent/conf.json", "file not found"),
    ],
)
def test_malformed_conf(tmp_path: Path, conf: str, message: str) -> None:
    r = candela("run", "s2_change_detection", "--conf", conf, home=tmp_path / "home")
    assert r.returncode == 1
    assert message in r.stderr


def test_home_that_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("oops")
    r = candela("up", "--port", "18080", home=home)
    assert r.returncode == 1
    assert "is not a folder" in r.stderr


def test_broken_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "pg").mkdir(parents=True)
    (home / "pg" / "junk").write_text("x")
    r = candela("up", "--port", "18080", home=home)
    assert r.returncode == 1
    assert "not a PostgreSQL data folder" in r.stderr


def test_catalog_needs_the_platform(tmp_path: Path) -> None:
    r = candela("catalog", "add", "data/oscd/bordeaux", home=tmp_path / "home")
    assert r.returncode == 1
    assert "candela up" in r.stderr


def test_services_catalogue(tmp_path: Path) -> None:
    r = candela("services", "--json", home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    cat = {s["name"]: s for s in json.loads(r.stdout)}
    assert {"search", "preprocess", "changedetect"} <= set(cat)
    for svc in cat.values():
        assert svc["summary"]
        assert svc["parameters"]["type"] == "object"
        assert svc["parameters"]["properties"]
    assert cat["changedetect"]["resources"]["gpu"] >= 1
    human = candela("services", home=tmp_path / "home")
    assert "--product" in human.stdout and "--before" in human.stdout


def test_read_json_arg_inline_file_and_errors(tmp_path: Path) -> None:
    """The one JSON-or-@file parser behind --conf, --products, --training, --metrics, --options."""
    from candela_sdk.errors import InputError
    from candela_sdk.jsonarg import read_json_arg

    f = tmp_path / "p.json"
    f.write_text('[{"id": "x"}]')
    assert read_json_arg(f"@{f}", "--products") == [{"id": "x"}]
    assert read_json_arg('{"a": 1}', "--conf", obj=True) == {"a": 1}
    for value, obj, message in [
        ("[1]", True, "--x must be a JSON object"),
        ("{bad", False, "--x is not valid JSON: Expecting property name"),
        (f"@{tmp_path}/missing.json", False, "--x file not found"),
    ]:
        with pytest.raises(InputError, match=message):
            read_json_arg(value, "--x", obj=obj)


def test_catalog_add_refuses_an_incomplete_product(
    tmp_path: Path, catalog_dsn: str, oscd_bordeaux: Path
) -> None:
    """An OSCD folder whose first date lacks B04 and B8A: that date is refused, naming them;
    the complete date is registered."""
    import psycopg

    from candela.cli import register_products

    city = tmp_path / "bordeaux"
    city.mkdir()
    for item in oscd_bordeaux.iterdir():
        if item.name == "imgs_1":
            (city / "imgs_1").mkdir()
            for f in item.iterdir():
                if not f.name.endswith(("_B04.tif", "_B8A.tif")):
                    (city / "imgs_1" / f.name).symlink_to(f)
        else:
            (city / item.name).symlink_to(item)
    added, updated, skipped, ids = register_products(catalog_dsn, [city])
    assert (added, updated) == (1, 0) and ids == ["oscd-bordeaux-20171026"]
    (refused,) = skipped
    assert refused.path == (city / "imgs_1").resolve()
    assert "oscd-bordeaux-20160504" in refused.reason and "B04, B8A missing" in refused.reason
    with psycopg.connect(catalog_dsn) as conn:
        rows = conn.execute("SELECT id FROM candela.products").fetchall()
    assert [r[0] for r in rows] == ["oscd-bordeaux-20171026"]
    # the complete sample goes in whole
    added, _, skipped, _ = register_products(catalog_dsn, [oscd_bordeaux])
    assert added == 1 and skipped == []
