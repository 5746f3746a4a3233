from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from candela_sdk import storage
from candela_sdk.cog import CogSpec, is_cog, write_cog
from candela_sdk.errors import InputError, OutputError


def test_parse_uris(tmp_path: Path) -> None:
    assert storage.parse("s3://eodata/Sentinel-2/x.SAFE").bucket == "eodata"
    assert storage.parse(f"file://{tmp_path}/a b").path == f"{tmp_path}/a b"
    assert storage.parse("rel/x").path == str(Path("rel/x").absolute())
    with pytest.raises(InputError):
        storage.parse("ftp://host/x")


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.json"
    with pytest.raises(RuntimeError), storage.writing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_writing_folder_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "result"
    with pytest.raises(RuntimeError), storage.writing_folder(target) as stage:
        (stage / "a.txt").write_text("a")
        raise RuntimeError("boom")
    assert not target.exists(), "a failed write left the output folder it created"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with storage.writing_folder(target) as stage:
        (stage / "a.txt").write_text("a")
        (stage / "sub").mkdir()
        (stage / "sub" / "b.txt").write_text("b")
    assert (target / "a.txt").read_text() == "a"
    assert (target / "sub" / "b.txt").read_text() == "b"


def test_a_failed_write_keeps_an_output_folder_that_was_there(tmp_path: Path) -> None:
    target = tmp_path / "result"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), storage.writing_folder(target) as stage:
        (stage / "a.txt").write_text("a")
        raise RuntimeError("boom")
    assert [p.name for p in target.iterdir()] == ["old.txt"]


def test_unreadable_input_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x80")
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        storage.read_text(tmp_path / "bin.txt")
    with pytest.raises(InputError, match="cannot read .*Is a directory"):
        storage.read_text(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        storage.read_bytes(tmp_path / "missing")


def test_unwritable_output(tmp_path: Path, unprivileged) -> None:
    # a folder that is a file: no user can write there (root included, as in CI)
    (tmp_path / "plain").write_text("not a folder")
    with pytest.raises(OutputError):
        storage.write_text(tmp_path / "plain" / "x.txt", "x")
    assert (tmp_path / "plain").read_text() == "not a folder"
    # a read-only folder stops everyone but root: checked as an unprivileged user (CI is root)
    storage.write_text(unprivileged.folder / "warm-up" / "x.txt", "x")  # (imports done here)
    ro = unprivileged.folder / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    outcome = unprivileged(storage.write_text, ro / "sub" / "x.txt", "x")
    assert outcome[:2] == ("raised", "candela_sdk.errors.OutputError"), outcome
    assert "cannot create the output folder" in outcome[2]
    outcome = unprivileged(storage.write_text, ro / "x.txt", "x")
    assert outcome[:2] == ("raised", "candela_sdk.errors.OutputError"), outcome
    assert "not writable" in outcome[2]
    assert list(ro.iterdir()) == []
    writable = unprivileged.folder / "rw"
    writable.mkdir()
    writable.chmod(0o777)
    assert unprivileged(storage.write_text, writable / "x.txt", "x")[0] == "ok"  # it can write


def test_cog_written_with_overviews_and_band_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(1, 5000, size=(2, 1300, 1100), dtype=np.uint16)
    spec = CogSpec(
        width=1100,
        height=1300,
        count=2,
        dtype="uint16",
        crs="EPSG:32630",
        transform=from_origin(600000, 5000000, 10, 10),
        nodata=0,
        band_names=["B02", "B03"],
    )
    out = tmp_path / "x.tif"
    write_cog(out, data, spec)
    ok, errors = is_cog(out)
    assert ok, errors
    import rasterio

    with rasterio.open(out) as ds:
        assert ds.descriptions == ("B02", "B03")
        assert (ds.read() == data).all()


def test_unwritable_output_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot create the output folder"):
        storage.write_text(blocker / "x.json", "x")


def test_delete_and_temporaries(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "x.tif"
    target.write_text("done")
    (out / ".x.tif.1234abcd.tmp").write_text("half")  # a write killed midway
    (out / ".x.tif.99.tmp").mkdir()
    (out / ".other.tif.1.tmp").write_text("another output's")
    removed = storage.remove_temporaries(target.as_uri())
    assert sorted(Path(r).name for r in removed) == [".x.tif.1234abcd.tmp", ".x.tif.99.tmp"]
    assert target.exists() and (out / ".other.tif.1.tmp").exists()
    storage.delete(target)
    storage.delete(target)  # nothing there is fine
    assert not target.exists()
    (out / "report").mkdir()
    (out / "report" / "index.html").write_text("<html/>")
    storage.delete(out / "report", recursive=True)
    assert not (out / "report").exists()
