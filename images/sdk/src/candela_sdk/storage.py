"""Storage URIs behind one small interface: ``file://`` (or a plain path) and ``s3://``.

Writes are atomic for readers: a local output is written to a temporary name in the same folder
and renamed; an S3 output is uploaded under a temporary key and copied to its final key, so a
reader never sees a half-written object. Reads of rasters go through GDAL's ``/vsis3/`` with the
same endpoint and credentials (see :func:`gdal_path` and :func:`rasterio_env`).

S3 settings come from the environment: ``CANDELA_S3_ENDPOINT_URL``, ``CANDELA_S3_ACCESS_KEY_ID``,
``CANDELA_S3_SECRET_ACCESS_KEY``, ``CANDELA_S3_REGION`` (default ``us-east-1``) for the results and
any other bucket; the read-only archive buckets (``CANDELA_EODATA_BUCKETS``, default ``eodata``) use
``CANDELA_EODATA_S3_*`` where set (:meth:`candela_sdk.settings.SdkSettings.s3_for`): boto3 clients
per bucket, and GDAL path-specific options for ``/vsis3/<archive bucket>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from candela_sdk.errors import InputError, OutputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    scheme: str  # "file" or "s3"
    bucket: str  # "" for file
    path: str  # absolute local path, or the S3 key

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return Path(self.path).as_uri()
        return f"s3://{self.bucket}/{self.path}"

    def join(self, *parts: str) -> Location:
        if self.scheme == "file":
            return Location("file", "", str(Path(self.path, *parts)))
        key = "/".join([self.path.rstrip("/"), *[p.strip("/") for p in parts]]).lstrip("/")
        return Location("s3", self.bucket, key)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def parse(uri: str | os.PathLike[str]) -> Location:
    """``file:///a/b``, ``/a/b``, ``a/b`` (relative to the working folder) or ``s3://bucket/key``."""
    text = os.fspath(uri)
    if text.startswith("s3://"):
        u = urlparse(text)
        if not u.netloc:
            raise InputError(f"S3 URI without a bucket: {text}")
        return Location("s3", u.netloc, u.path.lstrip("/"))
    if text.startswith("file://"):
        u = urlparse(text)
        return Location("file", "", unquote(u.path))
    if "://" in text:
        raise InputError(f"unsupported URI scheme (use file:// or s3://): {text}")
    return Location("file", "", str(Path(text).absolute()))


def to_uri(uri: str | os.PathLike[str]) -> str:
    return parse(uri).uri


# --- S3 ------------------------------------------------------------------------------------


def s3_settings(uri: str | os.PathLike[str] | None = None) -> dict[str, str | None]:
    """boto3 client arguments for the bucket of ``uri`` (default: the results')."""
    from candela_sdk.settings import get_settings

    bucket = parse(uri).bucket if uri is not None else ""
    return get_settings().s3_for(bucket)


def s3_client(uri: str | os.PathLike[str] | None = None) -> Any:
    """An S3 client with the settings of ``uri``'s bucket (archive or results)."""
    import boto3
    from botocore.config import Config

    cfg = s3_settings(uri)
    return boto3.client(
        "s3",
        config=Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}
        ),
        **{k: v for k, v in cfg.items() if v is not None},
    )


_S3_REASONS = {
    "InvalidAccessKeyId": "wrong S3 credentials (unknown access key)",
    "SignatureDoesNotMatch": "wrong S3 credentials (bad secret key)",
    "AccessDenied": "access denied",
    "NoSuchBucket": "no such bucket",
    "NoSuchKey": "no such object",
    "404": "not found",
    "403": "access denied",
}


def s3_error_text(exc: BaseException, uri: str, action: str = "read") -> str:
    """One line for a boto3/botocore error: ``cannot read s3://b/k: no such bucket (b)``."""
    from botocore.exceptions import ClientError

    # boto3's upload_file wraps the ClientError of a failed part in S3UploadFailedError
    cause = exc.__cause__ or exc.__context__
    if not isinstance(exc, ClientError) and isinstance(cause, ClientError):
        exc = cause
    if not isinstance(exc, ClientError):
        for code in _S3_REASONS:
            if f"({code})" in str(exc):
                return f"cannot {action} {uri}: {_S3_REASONS[code]}"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
        reason = _S3_REASONS.get(code, code)
        if code == "NoSuchBucket":
            reason += f" ({parse(uri).bucket})"
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = first
    endpoint = s3_settings(uri)["endpoint_url"] or "AWS"
    return f"cannot {action} {uri}: {reason} [S3 endpoint {endpoint}]"


def gdal_path(uri: str | os.PathLike[str]) -> str:
    """What rasterio/GDAL opens for ``uri``: a local path or ``/vsis3/bucket/key``."""
    loc = parse(uri)
    if loc.scheme == "file":
        return loc.path
    return f"/vsis3/{loc.bucket}/{loc.path}"


def gdal_s3_options(uri: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """GDAL configuration options for ``/vsis3/`` reads of ``uri``'s bucket (default: the
    results')."""
    cfg = s3_settings(uri)
    opts: dict[str, str] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
    if cfg["endpoint_url"]:
        u = urlparse(cfg["endpoint_url"])
        opts["AWS_S3_ENDPOINT"] = u.netloc
        opts["AWS_HTTPS"] = "YES" if u.scheme == "https" else "NO"
        opts["AWS_VIRTUAL_HOSTING"] = "FALSE"
    if cfg["aws_access_key_id"]:
        opts["AWS_ACCESS_KEY_ID"] = cfg["aws_access_key_id"]
        opts["AWS_SECRET_ACCESS_KEY"] = cfg["aws_secret_access_key"] or ""
    opts["AWS_REGION"] = cfg["region_name"] or "us-east-1"
    return opts


def rasterio_env(**extra: Any) -> Any:
    """A ``rasterio.Env`` configured for S3 reads with the platform's settings: the results'
    endpoint and keys, and the archive's for ``/vsis3/<archive bucket>/`` (GDAL path-specific
    options, set when the archive has settings of its own)."""
    import rasterio

    _set_archive_options()
    opts = gdal_s3_options()
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
    if "AWS_ACCESS_KEY_ID" not in opts:
        return rasterio.Env(**opts, **extra)
    # rasterio refuses AWS credentials as plain options: they travel in an AWSSession
    from rasterio.session import AWSSession

    session = AWSSession(
        aws_access_key_id=opts["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=opts["AWS_SECRET_ACCESS_KEY"],
        region_name=opts.get("AWS_REGION"),
        endpoint_url=opts.get("AWS_S3_ENDPOINT"),
    )
    rest = {k: v for k, v in opts.items() if k not in keys}
    return rasterio.Env(session=session, **rest, **extra)


_ARCHIVE_KEYS = ("AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING", "AWS_REGION",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # fmt: skip


_ARCHIVE_SET: set[bytes] = set()  # the path prefixes given options of their own


def _gdal_library() -> Any:
    """The GDAL library rasterio runs on (a wheel bundles its own copy, loaded privately)."""
    import ctypes
    import ctypes.util

    import rasterio._env  # noqa: F401  (loads GDAL)

    with contextlib.suppress(OSError):
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1] if "/" in line else ""
            if "libgdal" in Path(path).name:
                return ctypes.CDLL(path)
    found = ctypes.util.find_library("gdal")
    return ctypes.CDLL(found) if found else None


def _set_archive_options() -> None:
    """GDAL path-specific options for each archive bucket (``/vsis3/<bucket>/``): its endpoint
    and keys, so that one process reads the archive and the results with their own settings."""
    from candela_sdk.settings import get_settings

    s = get_settings()
    global _ARCHIVE_SET
    if not s.eodata_separate and not _ARCHIVE_SET:
        return
    lib = _gdal_library()
    if lib is None or not hasattr(lib, "VSISetPathSpecificOption"):
        raise InputError(
            "the archive's own S3 settings (CANDELA_EODATA_S3_*) need GDAL >= 3.6 "
            "(path-specific options): not found in this process"
        )
    for prefix in _ARCHIVE_SET:  # the settings may have changed since (tests, `candela up`)
        lib.VSIClearPathSpecificOptions(prefix)
    _ARCHIVE_SET = set()
    if not s.eodata_separate:
        return
    for bucket in s.eodata_buckets:
        prefix = f"/vsis3/{bucket}/".encode()
        opts = gdal_s3_options(f"s3://{bucket}/")
        _ARCHIVE_SET.add(prefix)
        for key in _ARCHIVE_KEYS:
            if key in opts:
                lib.VSISetPathSpecificOption(prefix, key.encode(), opts[key].encode())


def size(uri: str | os.PathLike[str]) -> int:
    """Bytes at ``uri``: a file or object, or everything below a folder or prefix (a SAFE
    product); :class:`InputError` when nothing is there."""
    loc = parse(uri)
    if loc.scheme == "file":
        p = Path(loc.path)
        if p.is_file():
            return p.stat().st_size
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        raise InputError(f"no such file: {loc.uri}")
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(loc.uri)
    try:
        return int(client.head_object(Bucket=loc.bucket, Key=loc.path)["ContentLength"])
    except ClientError:
        pass
    except BotoCoreError as exc:
        raise InputError(s3_error_text(exc, loc.uri)) from None
    total, found = 0, False
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=loc.bucket, Prefix=loc.path.rstrip("/") + "/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                total += int(obj["Size"])
                found = True
    except (ClientError, BotoCoreError) as exc:
        raise InputError(s3_error_text(exc, loc.uri, "list")) from None
    if not found:
        raise InputError(f"no such object: {loc.uri}")
    return total


# --- reading -------------------------------------------------------------------------------


def exists(uri: str | os.PathLike[str]) -> bool:
    loc = parse(uri)
    if loc.scheme == "file":
        return Path(loc.path).exists()
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(loc.uri)
    try:
        client.head_object(Bucket=loc.bucket, Key=loc.path)
        return True
    except ClientError:
        pass
    except BotoCoreError as exc:
        raise InputError(s3_error_text(exc, loc.uri)) from None
    # a "folder" (prefix) exists when it has at least one object; this call also tells a
    # missing bucket or wrong credentials apart from a missing key
    try:
        resp = client.list_objects_v2(
            Bucket=loc.bucket, Prefix=loc.path.rstrip("/") + "/", MaxKeys=1
        )
    except (ClientError, BotoCoreError) as exc:
        raise InputError(s3_error_text(exc, loc.uri)) from None
    return bool(resp.get("KeyCount"))


def version_stamp(uri: str | os.PathLike[str]) -> float:
    """A number that changes when the object at ``uri`` is rewritten (a local file's mtime), for
    caches keyed by URI; 0.0 where it cannot be told cheaply (S3: outputs are immutable)."""
    loc = parse(uri)
    if loc.scheme == "file":
        try:
            return Path(loc.path).stat().st_mtime
        except OSError:
            return 0.0
    return 0.0


def read_bytes(uri: str | os.PathLike[str]) -> bytes:
    loc = parse(uri)
    if loc.scheme == "file":
        try:
            return Path(loc.path).read_bytes()
        except FileNotFoundError:
            raise InputError(f"no such file: {loc.uri}") from None
        except OSError as exc:  # a folder, no permission: bad input, not a crash
            raise InputError(f"cannot read {loc.uri}: {exc.strerror or exc}") from None
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return s3_client(loc.uri).get_object(Bucket=loc.bucket, Key=loc.path)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise InputError(s3_error_text(exc, loc.uri)) from None


def read_text(uri: str | os.PathLike[str]) -> str:
    """The UTF-8 text at ``uri``; :class:`InputError` if it cannot be read or is not text."""
    try:
        return read_bytes(uri).decode()
    except UnicodeDecodeError:
        raise InputError(f"not a UTF-8 text file: {to_uri(uri)}") from None


def list_names(uri: str | os.PathLike[str]) -> list[str]:
    """Names directly below a folder (local) or prefix (S3)."""
    loc = parse(uri)
    if loc.scheme == "file":
        p = Path(loc.path)
        if not p.is_dir():
            raise InputError(f"not a folder: {loc.uri}")
        return sorted(x.name for x in p.iterdir())
    prefix = loc.path.rstrip("/") + "/"
    names: set[str] = set()
    from botocore.exceptions import BotoCoreError, ClientError

    if prefix == "/":
        prefix = ""
    paginator = s3_client(loc.uri).get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=loc.bucket, Prefix=prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                names.add(obj["Key"][len(prefix) :])
            for cp in page.get("CommonPrefixes", []):
                names.add(cp["Prefix"][len(prefix) :].rstrip("/"))
    except (ClientError, BotoCoreError) as exc:
        raise InputError(s3_error_text(exc, loc.uri, "list")) from None
    return sorted(n for n in names if n)


# --- writing -------------------------------------------------------------------------------


def _check_local_target(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output folder {path.parent}: {exc.strerror}"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"output folder is not writable: {path.parent}")


@contextlib.contextmanager
def writing(uri: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a local temporary path; publish it atomically to ``uri`` when the block succeeds.

    On any exception the temporary file is removed and nothing appears at ``uri``.
    """
    loc = parse(uri)
    if loc.scheme == "file":
        final = Path(loc.path)
        _check_local_target(final)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
        try:
            yield tmp
            if not tmp.exists():
                raise OutputError(f"nothing was written for {loc.uri}")
            os.replace(tmp, final)
        except OSError as exc:
            raise OutputError(f"cannot write {loc.uri}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return
    tmpdir = Path(tempfile.mkdtemp(prefix="candela-out-"))
    tmp = tmpdir / (loc.name or "object")
    try:
        yield tmp
        upload_file(tmp, loc.uri)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def upload_file(local: Path, uri: str) -> None:
    """Upload under a temporary key, then copy to the final key and delete the temporary one."""
    loc = parse(uri)
    if loc.scheme == "file":
        with writing(uri) as tmp:
            shutil.copyfile(local, tmp)
        return
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(loc.uri)
    tmp_key = f"{loc.path}.{uuid.uuid4().hex[:8]}.uploading"
    try:
        client.upload_file(
            str(local),
            loc.bucket,
            tmp_key,
            Config=TransferConfig(multipart_threshold=64 * 1024 * 1024),
            ExtraArgs={"ChecksumAlgorithm": "SHA256"},
        )
        client.copy_object(
            Bucket=loc.bucket, Key=loc.path, CopySource={"Bucket": loc.bucket, "Key": tmp_key}
        )
    except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
        raise OutputError(s3_error_text(exc, loc.uri, "write")) from None
    finally:
        with contextlib.suppress(Exception):
            client.delete_object(Bucket=loc.bucket, Key=tmp_key)
    log.info("uploaded %s (%d bytes)", loc.uri, local.stat().st_size)


def write_bytes(uri: str | os.PathLike[str], data: bytes) -> str:
    with writing(uri) as tmp:
        tmp.write_bytes(data)
    return to_uri(uri)


def write_text(uri: str | os.PathLike[str], text: str) -> str:
    return write_bytes(uri, text.encode())


@contextlib.contextmanager
def writing_folder(uri: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a local staging folder; on success its files replace those at ``uri``.

    For a local target the staging folder sits beside the target and each file is renamed into
    place only after every file was written; on failure the staging folder is removed.
    """
    loc = parse(uri)
    created = False
    if loc.scheme == "file":
        final = Path(loc.path)
        created = not final.exists()
        _check_local_target(final / "x")
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        stage = Path(tempfile.mkdtemp(prefix="candela-out-"))
    published = False
    try:
        yield stage
        files = sorted(p for p in stage.rglob("*") if p.is_file())
        for f in files:
            rel = f.relative_to(stage).as_posix()
            if loc.scheme == "file":
                dst = final / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dst)
            else:
                upload_file(f, loc.join(rel).uri)
        published = True
    except OSError as exc:
        raise OutputError(f"cannot write {loc.uri}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not published:
            # the output folder this call created stays only with the outputs in it
            with contextlib.suppress(OSError):
                final.rmdir()


# --- removing -------------------------------------------------------------------------------


def delete(uri: str | os.PathLike[str], recursive: bool = False) -> None:
    """Remove the file or object at ``uri``; with ``recursive`` the folder (prefix) and all
    below it. Nothing there is not an error."""
    loc = parse(uri)
    if loc.scheme == "file":
        path = Path(loc.path)
        if recursive and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return
    client = s3_client(loc.uri)
    if not recursive:
        client.delete_object(Bucket=loc.bucket, Key=loc.path)
        return
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=loc.bucket, Prefix=loc.path.rstrip("/") + "/"
    )
    for page in pages:
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=loc.bucket, Key=obj["Key"])


def remove_temporaries(uri: str | os.PathLike[str]) -> list[str]:
    """Remove what an interrupted write may have left beside ``uri`` (never ``uri`` itself).

    Writes are atomic (:func:`writing`, :func:`upload_file`, :func:`writing_folder`: a temporary
    name, then a rename or an S3 copy); a process killed mid-write can leave those temporaries
    behind: ``.<name>.<id>.tmp…`` files or folders beside a local output, ``<key>.….uploading``
    objects beside an S3 one. Returns what was removed.
    """
    loc = parse(uri)
    removed: list[str] = []
    if loc.scheme == "file":
        target = Path(loc.path)
        if not target.parent.is_dir():
            return removed
        for p in target.parent.glob(f".{target.name}.*"):
            if ".tmp" in p.name:
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(str(p))
        return removed
    client = s3_client(loc.uri)
    resp = client.list_objects_v2(Bucket=loc.bucket, Prefix=loc.path + ".")
    for obj in resp.get("Contents", []):
        if obj["Key"].endswith(".uploading"):
            client.delete_object(Bucket=loc.bucket, Key=obj["Key"])
            removed.append(f"s3://{loc.bucket}/{obj['Key']}")
    return removed


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of a local file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def local_copy(uri: str | os.PathLike[str], suffix: str = "") -> str:
    """A local path of ``uri``: the file itself when local (bad input when missing), else the
    object downloaded to a temporary file ending in ``suffix`` (the caller removes it)."""
    loc = parse(uri)
    if loc.scheme == "file":
        if not Path(loc.path).is_file():
            raise InputError(f"file not found: {loc.uri}")
        return loc.path
    fd, tmp = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(read_bytes(uri))
    return tmp
