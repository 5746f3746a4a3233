"""The embedded platform's pieces that need no running platform: ports, the generated Airflow
configuration, the private home, finding and stopping the platform's processes."""

from __future__ import annotations

import configparser
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from candela import embedded
from candela.settings import Settings

AIRFLOW_DEFAULTS = {8793, 8794, 8974}


def _settings(home: Path, **kw: object) -> Settings:
    return Settings(home=home, **kw)  # type: ignore[arg-type]


def _cfg(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(path)
    return cp


def test_internal_ports_are_free_distinct_and_kept(tmp_path: Path) -> None:
    a = embedded.choose_ports(_settings(tmp_path / "a", port=18080), set())
    b = embedded.choose_ports(_settings(tmp_path / "b", port=18080), set())
    assert set(a) == set(embedded.INTERNAL_PORTS)
    assert len(set(a.values())) == 3 and not set(a.values()) & AIRFLOW_DEFAULTS
    assert not set(a.values()) & set(b.values())  # two homes, no shared port
    # a second start of the same home keeps its ports while they are free
    assert embedded.choose_ports(_settings(tmp_path / "a", port=18080), set()) == a


def test_taken_recorded_port_is_replaced_unless_its_component_holds_it(tmp_path: Path) -> None:
    s = _settings(tmp_path, port=18080)
    first = embedded.choose_ports(s, set())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", first["scheduler_health_port"]))
        busy.listen()
        # the scheduler runs: it is the one holding its port
        assert embedded.choose_ports(s, {"scheduler"}) == first
        again = embedded.choose_ports(s, set())
    assert again["scheduler_health_port"] != first["scheduler_health_port"]
    assert again["trigger_log_port"] == first["trigger_log_port"]


def test_configured_busy_port_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = _settings(tmp_path, scheduler_health_port=port)
        with pytest.raises(embedded.PlatformError) as exc:
            embedded.choose_ports(s, set())
    assert str(exc.value) == (
        f"port {port} is already in use: choose another with CANDELA_SCHEDULER_HEALTH_PORT"
    )
    s = _settings(tmp_path, port=18080, trigger_log_port=18080)  # the API server's port
    with pytest.raises(embedded.PlatformError, match="CANDELA_TRIGGER_LOG_PORT"):
        embedded.choose_ports(s, set())


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDELA_USERS", "alice, Bob,,")
    monkeypatch.setenv("CANDELA_WORKER_LOG_PORT", "9793")
    monkeypatch.setenv("CANDELA_TOKEN_LIFETIME_S", "900")
    s = Settings()
    assert s.users == ["alice", "bob"] and s.admins == ["admin"]
    assert s.worker_log_port == 9793 and s.token_lifetime_s == 900
    monkeypatch.setenv("CANDELA_SCHEDULER_HEALTH_PORT", "70000")
    with pytest.raises(ValueError):
        Settings()


def test_airflow_config_binds_loopback_with_this_homes_ports(tmp_path: Path) -> None:
    s = _settings(tmp_path, port=18080, token_lifetime_s=1800)
    ports = embedded.choose_ports(s, set())
    path = embedded.write_airflow_config(s, "postgresql://postgres@/airflow?host=/x", ports)
    cp = _cfg(path)
    assert cp["api"]["host"] == "127.0.0.1" and cp["api"]["port"] == "18080"
    assert cp["scheduler"]["scheduler_health_check_server_host"] == "127.0.0.1"
    assert (
        int(cp["scheduler"]["scheduler_health_check_server_port"])
        == (ports["scheduler_health_port"])
    )
    assert int(cp["logging"]["worker_log_server_port"]) == ports["worker_log_port"]
    assert int(cp["logging"]["trigger_log_server_port"]) == ports["trigger_log_port"]
    assert cp["api_auth"]["jwt_expiration_time"] == "1800"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_default_token_lifetime_is_shorter_than_a_day() -> None:
    assert Settings().token_lifetime_s <= 3600


def test_home_is_private(tmp_path: Path) -> None:
    """Modes, not access (root reads everything anyway)."""
    home = tmp_path / "home"
    old = home / "storage" / "results"
    old.mkdir(parents=True, mode=0o755)
    (old / "run.json").write_text("{}")
    (old / "run.json").chmod(0o644)
    embedded.check_home(_settings(home))
    assert stat.S_IMODE(home.stat().st_mode) == embedded.home_mode()
    for path in [old, old / "run.json", home / "storage"]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    with embedded.private_umask():
        (home / "logs").mkdir()
        (home / "logs" / "x.log").write_text("x")
    assert stat.S_IMODE((home / "logs").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "logs" / "x.log").stat().st_mode) == 0o600


_IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"


def _orphan(home: Path, mark: bool = True) -> int:
    """A process that ignores SIGTERM whose parent exited (like a killed scheduler's worker)."""
    env = dict(os.environ)
    if mark:
        env[embedded.PLATFORM_MARK] = str(home.absolute())
    code = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', {_IGNORE_TERM!r}], start_new_session=True, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(p.pid)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the interpreter has started (its environ is readable)
        if "signal" in " ".join(psutil.Process(pid).cmdline()):
            break
        time.sleep(0.05)
    return pid


def test_orphans_are_found_by_their_mark_and_killed(tmp_path: Path) -> None:
    s = _settings(tmp_path / "home")
    mine = _orphan(s.home_abs)
    other = _orphan(tmp_path / "other")  # another platform's: left alone
    unmarked = _orphan(s.home_abs, mark=False)
    try:
        found = {p.pid for p in embedded.orphans(s)}
        assert mine in found and other not in found and unmarked not in found
        assert {p.pid for p in embedded.platform_processes(s)} == {mine}
        started = time.monotonic()
        assert embedded.terminate(embedded.orphans(s), timeout=1) == 1
        assert time.monotonic() - started < 10
        assert not psutil.pid_exists(mine) or psutil.Process(mine).status() == "zombie"
        assert embedded.orphans(s) == []
    finally:
        for pid in (mine, other, unmarked):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def test_recorded_leaders_are_not_orphans(tmp_path: Path) -> None:
    s = _settings(tmp_path / "home")
    pid = _orphan(s.home_abs)
    try:
        s.run_dir.mkdir(parents=True)
        (s.run_dir / "scheduler.pid").write_text(str(pid))
        assert embedded.orphans(s) == []  # the scheduler itself
        assert [p.pid for p in embedded.platform_processes(s)] == [pid]
    finally:
        os.kill(pid, 9)


def test_a_dead_components_session_is_found_without_the_mark(tmp_path: Path) -> None:
    """Airflow's processes overwrite their environment with their title (setproctitle): the
    workers of a killed scheduler are found by the session they keep."""
    s = _settings(tmp_path / "home")
    s.run_dir.mkdir(parents=True)
    code = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', {_IGNORE_TERM!r}], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"
    )
    leader = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert leader.stdout is not None
    worker = int(leader.stdout.readline())
    leader.wait(timeout=30)  # the "scheduler" is gone; its worker lives on, unmarked
    try:
        assert embedded.orphans(s) == []
        embedded.record_session(s, leader.pid)
        assert [p.pid for p in embedded.orphans(s)] == [worker]
        assert embedded.terminate(embedded.orphans(s), timeout=1) == 1
        assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == "zombie"
    finally:
        try:
            os.kill(worker, 9)
        except ProcessLookupError:
            pass


def test_a_session_id_reused_by_another_program_is_not_ours(tmp_path: Path) -> None:
    """A recorded session whose id now leads another process (the pid was reused) is left out:
    `candela down` must never sweep another program's (or another platform's) processes."""
    s = _settings(tmp_path / "home")
    s.run_dir.mkdir(parents=True)
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        started = psutil.Process(other.pid).create_time()
        # as if our component had led session `other.pid` before that id was reused
        (s.run_dir / "sessions").write_text(f"{other.pid} {started - 3600!r}\n")
        assert embedded.recorded_sessions(s) == set()
        assert other.pid not in {p.pid for p in embedded.orphans(s)}
        # recorded with its own start time it is ours
        embedded.record_session(s, other.pid)
        assert embedded.recorded_sessions(s) == {other.pid}
    finally:
        other.kill()
        other.wait(timeout=10)


def test_free_ports_are_distinct_and_outside_the_ephemeral_range() -> None:
    # ports chosen for servers about to start: never twice, never where the kernel picks the
    # local ports of outgoing connections (one could take it before the server binds it)
    from candela.embedded import _ephemeral_range, free_port, port_in_use

    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert not any(port_in_use(p) for p in ports)
    if low > 12000:
        assert all(10000 <= p < low for p in ports)


def test_a_seaweedfs_bind_failure_is_told_apart(tmp_path) -> None:
    from candela.s3server import _bind_failed

    log = tmp_path / "seaweedfs.log"
    log.write_text(
        "F1202 filer.go:461 failed to listen on grpc port 50443: address already in use\n"
    )
    offset = log.stat().st_size
    assert _bind_failed(log, 0)
    assert not _bind_failed(log, offset)  # an earlier start's failure is not this one's
    with log.open("a") as f:
        f.write("F1202 volume: no space left on device\n")
    assert not _bind_failed(log, offset)
    assert not _bind_failed(tmp_path / "missing.log", 0)
