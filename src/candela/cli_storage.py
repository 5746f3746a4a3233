"""``candela storage``: each user's private workspace (uploads and results).

Where a workspace lives:

* object-store mode (``CANDELA_STORAGE_ROOT=s3://…``, e.g. ``candela up --s3``): its own bucket
  ``s3://ws-<user>/``. The S3 server gives each user an identity limited to that bucket
  (SeaweedFS ``Read:ws-<user>``, ``Write:ws-<user>``, ``List:ws-<user>``; on CREODIAS one
  bucket per project with its own EC2 credentials), so one user cannot read another's workspace:
  the server refuses, not this program.
* local mode: ``<storage root>/workspaces/<user>/`` (one machine, one trust domain).

The platform user running the command is ``$CANDELA_USER``, else the login name. ``--user X``
acts on another user's workspace only for an admin (``CANDELA_ADMINS``, default ``admin``, and
the owner of ``CANDELA_HOME``); anyone else is refused before any request. S3 credentials are the
user's own ``CANDELA_S3_*``; without them, when ``candela up --s3`` runs under ``CANDELA_HOME``,
those it wrote for that user (``HOME/s3/users/<user>.json``, the admin's for an admin).
Workspaces are recorded in ``candela.workspaces`` when the platform database is reachable.
Paths given to ``ls``/``put``/``get`` are relative to the workspace and may not climb out of it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from candela.settings import Settings
from candela.users import bucket_for, current_user
from candela_sdk import storage
from candela_sdk.errors import CandelaError, InputError, OutputError

log = logging.getLogger(__name__)

app = typer.Typer(help="Your private workspace: list, upload, download.", no_args_is_help=True)


# --- the workspace, as functions ------------------------------------------------------------


def workspace_root(user: str, storage_root: str) -> str:
    """``s3://ws-<user>/`` when the platform stores on S3, else ``<root>/workspaces/<user>/``."""
    user = current_user(user)
    root = storage.parse(storage_root)
    if root.scheme == "s3":
        return f"s3://{bucket_for(user)}/"
    return root.join("workspaces", user).uri.rstrip("/") + "/"


def resolve(root: str, path: str = "") -> str:
    """``path`` inside the workspace ``root``; refuses absolute paths, URIs and ``..``."""
    rel = (path or "").strip()
    if "://" in rel or rel.startswith("/"):
        raise InputError(f"give a path inside your workspace, not {rel!r}")
    parts = [p for p in PurePosixPath(rel).parts if p not in ("", ".")]
    if ".." in parts:
        raise InputError(f"path {rel!r} leaves your workspace")
    loc = storage.parse(root)
    if not parts:
        return loc.uri.rstrip("/") + "/" if loc.scheme == "s3" else loc.uri
    if loc.scheme == "s3":
        return f"s3://{loc.bucket}/" + "/".join(p for p in [loc.path.strip("/"), *parts] if p)
    return loc.join(*parts).uri


def ensure(root: str) -> None:
    """Create the workspace (bucket or folder) if it does not exist yet."""
    loc = storage.parse(root)
    if loc.scheme == "file":
        Path(loc.path).mkdir(parents=True, exist_ok=True)
        return
    from botocore.exceptions import BotoCoreError, ClientError

    client = storage.s3_client()
    try:
        client.head_bucket(Bucket=loc.bucket)
        return
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
            raise OutputError(storage.s3_error_text(exc, root, "use")) from None
    except BotoCoreError as exc:
        raise OutputError(storage.s3_error_text(exc, root, "use")) from None
    try:
        client.create_bucket(Bucket=loc.bucket)
    except (ClientError, BotoCoreError) as exc:
        raise OutputError(storage.s3_error_text(exc, root, "create")) from None


def ls(root: str, path: str = "") -> list[str]:
    uri = resolve(root, path)
    loc = storage.parse(uri)
    if loc.scheme == "file" and not Path(loc.path).exists():
        raise InputError(f"nothing at {path or '/'} in your workspace")
    if loc.scheme == "file" and Path(loc.path).is_file():
        return [Path(loc.path).name]
    names = storage.list_names(uri)
    if not names and path and not storage.exists(uri):
        raise InputError(f"nothing at {path} in your workspace")
    return names


def put(root: str, local: Path, path: str = "") -> list[str]:
    """Upload a file or a folder (each file atomically); returns the URIs written."""
    if not local.exists():
        raise InputError(f"no such file or folder: {local}")
    target = path or local.name
    if path.endswith("/"):
        target = path + local.name
    written = []
    files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local]
    for f in files:
        rel = f.relative_to(local).as_posix() if local.is_dir() else ""
        uri = resolve(root, f"{target.rstrip('/')}/{rel}" if rel else target)
        storage.upload_file(f, uri)
        written.append(uri)
    return written


def get(root: str, path: str, local: Path) -> Path:
    """Download one object/file of the workspace to ``local`` (a file or an existing folder)."""
    uri = resolve(root, path)
    loc = storage.parse(uri)
    dest = local / loc.name if local.is_dir() else local
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        if loc.scheme == "file":
            if not Path(loc.path).is_file():
                raise InputError(f"no file {path} in your workspace")
            shutil.copyfile(loc.path, tmp)
        else:
            tmp.write_bytes(storage.read_bytes(uri))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# --- commands ------------------------------------------------------------------------------

UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user", help="whose workspace (default yours: $CANDELA_USER or login; another's: admins)"
    ),
]


def home_owner(home: Path) -> str | None:
    """The platform user of the OS account owning ``home`` (the one who ran ``candela up``)."""
    import pwd

    try:
        return current_user(pwd.getpwuid(home.stat().st_uid).pw_name)
    except (OSError, KeyError, InputError):
        return None


def is_admin(user: str, settings: Settings) -> bool:
    return user in settings.admins or user == home_owner(settings.home_abs)


def acting_as(user: str | None, settings: Settings) -> tuple[str, str]:
    """(who runs the command, whose workspace): another's only for an admin."""
    actor = current_user()
    target = current_user(user) if user else actor
    if target != actor and not is_admin(actor, settings):
        raise InputError(
            f"only an admin may use another user's workspace: you are {actor}, not an admin "
            "(CANDELA_ADMINS)"
        )
    return actor, target


def _use_platform_s3(actor: str, settings: Settings) -> str | None:
    """Object-store mode of ``candela up --s3``: the storage root, with the actor's keys set.

    ``None`` when no S3 server runs under the home (or a storage root is configured).
    """
    from candela import s3server

    if settings.storage_root or s3server.running(settings.home_abs) is None:
        return None
    if not settings.s3_access_key_id:
        name = "admin" if is_admin(actor, settings) else actor
        creds = s3server.read_credentials(settings.home_abs, name)
        if creds is None:
            raise InputError(
                f"no S3 credentials for user {actor}: an admin adds you to CANDELA_USERS and "
                "runs `candela up --s3` again, then gives you "
                f"{s3server.credentials_file(settings.home_abs, name)}"
            )
        os.environ.update(creds)  # exported for the storage calls of this process (not a read)
    return f"s3://{s3server.RESULTS_BUCKET}/"


def _root(user: str | None) -> tuple[str, str]:
    from candela.settings import get_settings

    settings = get_settings()
    actor, name = acting_as(user, settings)
    root = _use_platform_s3(actor, settings) or settings.storage
    return name, workspace_root(name, root)


def _register_quietly(name: str, root: str) -> None:
    from candela import embedded
    from candela.db.workspaces import register
    from candela.settings import get_settings

    try:
        register(embedded.platform_dsn(get_settings()), name, root)
    except Exception as exc:  # the database is optional for file transfers
        log.debug("workspace %s not recorded: %s", name, exc)


def _fail(exc: CandelaError) -> typer.Exit:
    from candela.cli import fail_on

    return fail_on(exc)


@app.command("init")
def init_cmd(user: UserOpt = None) -> None:
    """Create your workspace (bucket or folder) and record it."""
    try:
        name, root = _root(user)
        ensure(root)
    except CandelaError as exc:
        raise _fail(exc) from None
    _register_quietly(name, root)
    typer.echo(f"workspace of {name}: {root}")


@app.command("ls")
def ls_cmd(
    path: Annotated[str, typer.Argument(help="folder in the workspace")] = "", user: UserOpt = None
) -> None:
    """List a folder of your workspace."""
    try:
        _, root = _root(user)
        for n in ls(root, path):
            typer.echo(n)
    except CandelaError as exc:
        raise _fail(exc) from None


@app.command("put")
def put_cmd(
    local: Annotated[Path, typer.Argument(help="file or folder to upload")],
    path: Annotated[str, typer.Argument(help="where in the workspace (default its name)")] = "",
    user: UserOpt = None,
) -> None:
    """Upload a file or a folder into your workspace."""
    try:
        name, root = _root(user)
        written = put(root, local, path)
    except CandelaError as exc:
        raise _fail(exc) from None
    _register_quietly(name, root)
    for uri in written:
        typer.echo(uri)


@app.command("get")
def get_cmd(
    path: Annotated[str, typer.Argument(help="file in the workspace")],
    local: Annotated[Path, typer.Argument(help="local file or folder")] = Path("."),
    user: UserOpt = None,
) -> None:
    """Download a file of your workspace."""
    try:
        _, root = _root(user)
        typer.echo(str(get(root, path, local)))
    except CandelaError as exc:
        raise _fail(exc) from None
