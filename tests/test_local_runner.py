"""The local runner: a real subprocess, streamed logs, JSON result, exit codes, timeouts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from candela_operators.local import LocalRunner, StepTimeout, interpret


def _script(tmp_path: Path, body: str) -> list[str]:
    f = tmp_path / "step.py"
    f.write_text(body)
    return [sys.executable, str(f)]


def test_streams_output_and_returns_result(tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        "import json, os, sys\n"
        "print('working on block 1/2', file=sys.stderr)\n"
        "print('working on block 2/2', file=sys.stderr)\n"
        "open(os.environ['CANDELA_RESULT_PATH'], 'w').write(json.dumps({'output': 'file:///x'}))\n",
    )
    lines: list[str] = []
    outcome = LocalRunner(lines.append).run(argv)
    assert outcome.returncode == 0
    assert outcome.result == {"output": "file:///x"}
    assert "working on block 2/2" in lines
    assert interpret("toy", 0, outcome.result, outcome.last_lines) == {"output": "file:///x"}


def test_no_data_exit_code_skips(tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        "import json, os, sys\n"
        "open(os.environ['CANDELA_RESULT_PATH'], 'w').write(json.dumps({'error': 'no product'}))\n"
        "sys.exit(3)\n",
    )
    outcome = LocalRunner(lambda s: None).run(argv)
    with pytest.raises(AirflowSkipException, match="no product"):
        interpret("search", outcome.returncode, outcome.result, outcome.last_lines)


def test_failure_reports_the_error_line(tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        "import sys\nprint('disk quota exceeded on /data', file=sys.stderr)\nsys.exit(1)\n",
    )
    outcome = LocalRunner(lambda s: None).run(argv)
    with pytest.raises(AirflowException, match="exit code 1.*disk quota") as failed:
        interpret("preprocess", outcome.returncode, outcome.result, outcome.last_lines)
    assert not isinstance(failed.value, AirflowFailException), "an ordinary failure is retried"


def test_bad_input_fails_without_retry_with_the_services_reason(tmp_path: Path) -> None:
    argv = _script(
        tmp_path,
        "import json, os, sys\n"
        "print('candela-preprocess: bad input: band B8A missing', file=sys.stderr)\n"
        "r = {'outcome': 'bad_input', 'error': 'band B8A missing from product'}\n"
        "open(os.environ['CANDELA_RESULT_PATH'], 'w').write(json.dumps(r))\n"
        "print(json.dumps(r))\n"
        "sys.exit(2)\n",
    )
    outcome = LocalRunner(lambda s: None).run(argv)
    with pytest.raises(AirflowFailException, match="bad input.*B8A missing from product"):
        interpret("preprocess", outcome.returncode, outcome.result, outcome.last_lines)
    # without a result file, the JSON line the service printed gives the reason
    with pytest.raises(AirflowFailException, match="exit code 2.*B8A missing from product"):
        interpret("preprocess", 2, None, outcome.last_lines)


def test_a_real_service_with_bad_input_fails_without_retry_in_seconds(tmp_path: Path) -> None:
    """The whole path through the operator: the service refuses, the task fails for good."""
    from candela_operators.local import LocalStepOperator

    op = LocalStepOperator(
        task_id="detect",
        service="changedetect",
        service_args={
            "before": str(tmp_path / "missing-before.tif"),
            "after": str(tmp_path / "missing-after.tif"),
            "model": "cva",
            "output": str(tmp_path / "out"),
        },
    )
    started = time.monotonic()
    with pytest.raises(AirflowFailException, match="bad input") as failed:
        op.execute({})
    elapsed = time.monotonic() - started
    print(f"bad-input step failed in {elapsed:.1f} s: {failed.value}")
    assert "missing-before.tif" in str(failed.value)
    assert elapsed < 60
    assert not (tmp_path / "out").exists()


def test_success_without_result_is_an_error() -> None:
    with pytest.raises(AirflowException, match="no JSON result"):
        interpret("toy", 0, None, [])


def test_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    scratchfile = tmp_path / "scratch.txt"
    argv = _script(
        tmp_path,
        "import os, subprocess, sys, time\n"
        f"open({str(scratchfile)!r}, 'w').write(os.path.dirname(os.environ['CANDELA_RESULT_PATH']))\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n",
    )
    started = time.monotonic()
    with pytest.raises(StepTimeout):
        LocalRunner(lambda s: None).run(argv, timeout=2)
    assert time.monotonic() - started < 20
    child = int(pidfile.read_text())
    time.sleep(0.3)
    assert not _alive(child), "the step's own child process survived the timeout"
    scratch = Path(scratchfile.read_text())
    assert scratch.name.startswith("candela-step-")
    assert not scratch.exists(), "the step's scratch folder survived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_missing_command() -> None:
    with pytest.raises(AirflowException, match="command not found"):
        LocalRunner(lambda s: None).run(["candela-does-not-exist"])


def _wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# a step that starts a grandchild; both sleep; their pids and the scratch folder are recorded
_TREE_STEP = """
import os, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open({record!r} + ".tmp", "w") as f:
    f.write(f"{{os.getpid()}} {{grandchild.pid}} {{os.environ['CANDELA_RESULT_PATH']}}")
os.replace({record!r} + ".tmp", {record!r})
time.sleep(120)
"""

# the task process: a runner whose death the test causes
_TASK = """
import sys
from candela_operators.local import LocalRunner
LocalRunner(lambda line: None).run([sys.executable, {step!r}])
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_task_leaves_no_process_and_no_scratch_folder(
    tmp_path: Path, sig: signal.Signals
) -> None:
    record = tmp_path / "tree.txt"
    step = tmp_path / "step.py"
    step.write_text(_TREE_STEP.format(record=str(record)))
    task_script = tmp_path / "task.py"
    task_script.write_text(_TASK.format(step=str(step)))
    task = subprocess.Popen([sys.executable, str(task_script)])
    try:
        assert _wait_until(record.exists, 60), "the step did not start"
        service_pid, grandchild_pid, result_path = record.read_text().split()
        scratch = Path(result_path).parent
        assert scratch.name.startswith("candela-step-") and scratch.is_dir()
        tree = psutil.Process(task.pid).children(recursive=True)
        pids = {p.pid for p in tree} | {int(service_pid), int(grandchild_pid)}
        assert {int(service_pid), int(grandchild_pid)} <= pids
        os.kill(task.pid, sig)
        task.wait(timeout=30)

        def _gone() -> bool:
            return not any(_alive(pid) for pid in pids) and not scratch.exists()

        assert _wait_until(_gone, 15), (
            f"after {sig.name} of the task: alive {[p for p in pids if _alive(p)]}, "
            f"scratch folder {'still there' if scratch.exists() else 'removed'}"
        )
    finally:
        if task.poll() is None:
            task.kill()
            task.wait()


def test_a_finished_step_leaves_nothing_behind(tmp_path: Path) -> None:
    """A grandchild left running (even holding the output pipe) neither outlives the step nor
    holds it open; the scratch folder goes."""
    record = tmp_path / "tree.txt"
    argv = _script(
        tmp_path,
        "import json, os, subprocess, sys\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(record)!r}, 'w').write(f'{{g.pid}} {{os.environ[\"CANDELA_RESULT_PATH\"]}}')\n"
        "open(os.environ['CANDELA_RESULT_PATH'], 'w').write(json.dumps({'output': 'x'}))\n",
    )
    started = time.monotonic()
    outcome = LocalRunner(lambda s: None).run(argv)
    assert time.monotonic() - started < 30, "a lingering grandchild held the step open"
    assert outcome.returncode == 0 and outcome.result == {"output": "x"}
    grandchild, result_path = record.read_text().split()
    assert _wait_until(lambda: not _alive(int(grandchild)), 5), "the grandchild outlived the step"
    assert not Path(result_path).parent.exists(), "the scratch folder outlived the step"


def test_a_failed_step_removes_its_scratch_folder(tmp_path: Path) -> None:
    record = tmp_path / "scratch.txt"
    argv = _script(
        tmp_path,
        "import os, sys\n"
        f"open({str(record)!r}, 'w').write(os.path.dirname(os.environ['CANDELA_RESULT_PATH']))\n"
        "open(os.environ['CANDELA_RESULT_PATH'] + '.partial', 'w').write('x')\n"
        "sys.exit(1)\n",
    )
    outcome = LocalRunner(lambda s: None).run(argv)
    assert outcome.returncode == 1
    assert not Path(record.read_text()).exists()


def test_usage_of_the_process_tree(tmp_path: Path) -> None:
    # a child that holds ~200 MiB and burns ~0.6 s of CPU: both are seen through the tree
    argv = _script(
        tmp_path,
        "import subprocess, sys, time\n"
        "code = \"b = bytearray(200 * 2**20); t = __import__('time').process_time()\\n"
        "while __import__('time').process_time() - t < 0.6: pass\\n"
        "__import__('time').sleep(0.8)\"\n"
        "subprocess.run([sys.executable, '-c', code], check=True)\n",
    )
    outcome = LocalRunner(lambda s: None).run(argv)
    assert outcome.returncode == 0 and outcome.usage is not None
    assert outcome.usage["cpu_s"] >= 0.55
    assert outcome.usage["peak_rss_mib"] >= 200
    assert outcome.usage["duration_s"] >= 1.4


def test_usage_is_spooled_for_the_collector(tmp_path: Path) -> None:
    import json

    from candela_operators.usage import spool, spool_dir

    p = spool(tmp_path, {"cpu_s": 1.5, "service": "toy"})
    assert p.parent == spool_dir(tmp_path)
    assert json.loads(p.read_text()) == {"cpu_s": 1.5, "service": "toy"}
    assert not list(spool_dir(tmp_path).glob(".*.part"))


def test_service_log_lines_keep_their_level() -> None:
    import logging

    from candela_operators.loglines import level_of, line_logger

    assert level_of("2026-01-01 10:00:00,123 WARNING candela_x: careful") == logging.WARNING
    assert level_of("2026-01-01 10:00:00,123 DEBUG candela_x: detail") == logging.DEBUG
    assert level_of("2026-01-01 10:00:00,123 ERROR candela_x: bad") == logging.ERROR
    assert level_of("plain output of a library") == logging.INFO
    assert level_of("WARNING at the start but no timestamp") == logging.INFO
    seen: list[tuple[int, str]] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.levelno, record.getMessage()))

    log = logging.getLogger("test.loglines")
    log.setLevel(logging.DEBUG)
    log.addHandler(Recorder())
    log.propagate = False
    emit = line_logger(log)
    emit("2026-01-01 10:00:00,123 WARNING candela_x: careful")
    emit("hello")
    assert seen == [
        (logging.WARNING, "2026-01-01 10:00:00,123 WARNING candela_x: careful"),
        (logging.INFO, "hello"),
    ]


def test_third_party_noise_is_silenced_unless_debug(monkeypatch) -> None:
    import logging

    from candela_sdk.contract import configure_logging

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    gx = logging.getLogger("great_expectations")
    old = gx.level
    try:
        configure_logging("INFO")
        assert gx.getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("tensorflow").getEffectiveLevel() == logging.WARNING
        import os

        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    finally:
        gx.setLevel(old)
