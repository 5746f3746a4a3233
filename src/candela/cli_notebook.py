"""``candela notebook``: JupyterLab with the SDK (``candela_client``) on the embedded platform.

The notebook server gets the platform's address, a login and the storage settings in its
environment, so that ``candela_client.Client.from_env()`` works in every notebook unchanged.
JupyterLab is the platform's optional extra ``notebook`` (``pip install 'candela[notebook]'``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from candela.cli_console import console, err
from candela.settings import Settings

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
#: what the notebooks read (``candela_client.ClientConfig.from_env``), besides the S3 variables
CLIENT_VARIABLES = ("CANDELA_URL", "CANDELA_USERNAME", "CANDELA_PASSWORD")


def notebook_env(settings: Settings) -> dict[str, str]:
    """The SDK's configuration for the platform of ``settings``: ``CANDELA_URL``, the login
    (``CANDELA_USERNAME``, ``CANDELA_PASSWORD``) and, when results go to S3, ``CANDELA_S3_*``
    (the local SeaweedFS of ``candela up --s3``, else the configured endpoint)."""
    from candela import embedded, s3server

    env = {
        "CANDELA_URL": settings.api_url,
        "CANDELA_USERNAME": settings.airflow_username,
        "CANDELA_PASSWORD": embedded.admin_password(settings),
    }
    server = s3server.running(settings.home_abs)
    if server is not None:
        env.update(server.env("admin"))
    elif settings.s3_endpoint_url:
        env["CANDELA_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
        env["CANDELA_S3_REGION"] = settings.s3_region
        if settings.s3_access_key_id:
            env["CANDELA_S3_ACCESS_KEY_ID"] = settings.s3_access_key_id
            env["CANDELA_S3_SECRET_ACCESS_KEY"] = settings.s3_secret_access_key or ""
    return env


def notebook(
    port: Annotated[int | None, typer.Option(help="port of the platform's API")] = None,
    lab_port: Annotated[int, typer.Option(help="port of JupyterLab (loopback)")] = 8888,
    notebook_dir: Annotated[
        Path, typer.Option(help="folder JupyterLab opens (default: the example notebooks)")
    ] = NOTEBOOKS,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="print the command and the variables set; start nothing"),
    ] = False,
) -> None:
    """Start JupyterLab with the SDK (candela_client) configured for the running platform."""
    from candela import embedded
    from candela.cli import _settings, fail

    s = _settings(port)
    if not s.airflow_url and embedded.health(s) is None:
        raise fail(f"Candela is not running at {s.api_url}: start it with `candela up`")
    if not notebook_dir.is_dir():
        raise fail(f"no such folder: {notebook_dir}")
    try:
        env = notebook_env(s)
    except embedded.PlatformError as exc:
        raise fail(str(exc)) from None
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--notebook-dir={notebook_dir}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={lab_port}",
    ]
    if dry_run:
        console.print(" ".join(cmd), soft_wrap=True, highlight=False)
        for key in sorted(env):
            shown = "***" if "PASSWORD" in key or "SECRET" in key else env[key]
            console.print(f"{key}={shown}", highlight=False)
        return
    if importlib.util.find_spec("jupyterlab") is None:
        raise fail("JupyterLab is not installed: pip install 'candela[notebook]'")
    if importlib.util.find_spec("candela_client") is None:
        raise fail("the SDK is not installed: pip install 'candela[notebook]'")
    err.print(f"JupyterLab on http://127.0.0.1:{lab_port} with the SDK on {s.api_url}")
    code = subprocess.call(cmd, env={**os.environ, **env})
    raise typer.Exit(code)
