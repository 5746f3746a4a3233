"""The local runner: a real subprocess, streamed logs, JSON result, exit codes, timeouts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

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
        "import sys\nprint('band B8A missing from product', file=sys.stderr)\nsys.exit(2)\n",
    )
    outcome = LocalRunner(lambda s: None).run(argv)
    with pytest.raises(AirflowException, match="exit code 2.*B8A missing"):
        interpret("preprocess", outcome.returncode, outcome.result, outcome.last_lines)


def test_success_without_result_is_an_error() -> None:
    with pytest.raises(AirflowException, match="no JSON result"):
        interpret("toy", 0, None, [])


def test_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    argv = _script(
        tmp_path,
        "import subprocess, sys, time\n"
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
