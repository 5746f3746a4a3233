"""The ``local`` runner: the service's CLI as a subprocess of the Airflow task."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from candela_operators.command import (
    NO_DATA_EXIT_CODE,
    build_command,
    failure_reason,
    step_failure,
)
from candela_operators.usage import TreeMeter, spool

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


@dataclass
class ProcessOutcome:
    returncode: int
    result: dict[str, Any] | None
    last_lines: list[str]
    usage: dict[str, float] | None = None


class StepTimeout(Exception):
    pass


def _die_with(parent_pid: int) -> Callable[[], None]:
    """``preexec_fn``: the child gets SIGKILL when the thread that started it dies (Linux).

    So ``kill -9`` of the task process also kills the service it started. The check of the
    parent's pid closes the window where the parent died before ``prctl`` ran.
    """

    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class LocalRunner:
    """Run a command, stream its output line by line, return its JSON result.

    Nothing of a step outlives it:

    * the child runs in its own process group (session), and that group is killed on every exit
      path (success, failure, timeout, cancellation, an exception in the task): grandchildren
      included; a grandchild still holding the output pipe after the service exited cannot
      hold the step open;
    * the child gets SIGKILL if the task process dies (parent-death signal);
    * its ``candela-step-*`` scratch folder is removed on every exit path;
    * a watchdog process (:mod:`candela_operators.reaper`) kills the group and removes the
      scratch folder if the task process is killed before it could do so itself (``kill -9``).
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self._proc: subprocess.Popen[str] | None = None
        self.usage: dict[str, float] | None = None

    @staticmethod
    def resolve(argv: Sequence[str]) -> list[str]:
        """Prefer the console script installed beside this Python (the platform's venv)."""
        exe = Path(sys.executable).parent / argv[0]
        return [str(exe) if exe.exists() else argv[0], *argv[1:]]

    def run(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ProcessOutcome:
        scratch = Path(tempfile.mkdtemp(prefix="candela-step-"))
        watchdog = _Watchdog.start(scratch, self._log)
        try:
            return self._run(scratch, argv, env, timeout, watchdog)
        finally:
            self._kill_group()
            shutil.rmtree(scratch, ignore_errors=True)
            watchdog.release()

    def _run(
        self,
        scratch: Path,
        argv: Sequence[str],
        env: dict[str, str] | None,
        timeout: float | None,
        watchdog: _Watchdog,
    ) -> ProcessOutcome:
        result_path = scratch / "result.json"
        child_env = dict(os.environ if env is None else env)
        child_env["CANDELA_RESULT_PATH"] = str(result_path)
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        cmd = self.resolve(argv)
        self._log("running: " + " ".join(cmd))
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                env=child_env,
                start_new_session=True,
                preexec_fn=_die_with(os.getpid()),
            )
        except FileNotFoundError:
            raise AirflowException(f"command not found: {cmd[0]}") from None
        proc = self._proc
        meter = TreeMeter()
        meter.start(proc.pid)
        watchdog.watch(proc.pid)
        threading.Thread(
            target=_kill_group_when_leader_exits, args=(proc.pid,), daemon=True
        ).start()
        last: list[str] = []
        timer = None
        timed_out = threading.Event()
        if timeout:

            def _expire() -> None:
                timed_out.set()
                self.kill()

            timer = threading.Timer(timeout, _expire)
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                self._log(line)
                last = (last + [line])[-20:]
            rc = proc.wait()
            self.usage = meter.stop()
        except BaseException:
            # task timeout (AirflowTaskTimeout), cancellation, anything: stop the child
            self.kill()
            raise
        finally:
            if timer:
                timer.cancel()
        if timed_out.is_set():
            raise StepTimeout(f"step timed out after {timeout:.0f} s and was stopped")
        result = None
        if result_path.exists():
            with contextlib.suppress(ValueError):
                result = json.loads(result_path.read_text())
        return ProcessOutcome(rc, result, last, self.usage)

    def kill(self, grace: float = 10.0) -> None:
        """SIGTERM to the step's process group, SIGKILL to what is left after ``grace`` s."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            from candela_sdk.processes import stop_group

            # the Popen keeps the exit status: wait on it, not on the group
            stop_group(proc.pid, grace, alive=lambda: proc.poll() is None)
        self._kill_group()

    def _kill_group(self) -> None:
        """SIGKILL to whatever is left of the step's process group; reap the service."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)


def _kill_group_when_leader_exits(pid: int) -> None:
    """Once the service exits, its group goes: nothing it started may outlive it.

    ``WNOWAIT`` leaves the exited service unreaped, so its pid (the group id) cannot be reused
    before the group is killed.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class _Watchdog:
    """The runner's end of :mod:`candela_operators.reaper` (see there)."""

    def __init__(self, proc: subprocess.Popen[bytes] | None, pipe: IO[str] | None) -> None:
        self._proc = proc
        self._pipe = pipe

    @classmethod
    def start(cls, scratch: Path, log: Callable[[str], None]) -> _Watchdog:
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "candela_operators.reaper", str(scratch)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(write_end)
            log(f"warning: no step watchdog ({exc}); a killed task may leave its step running")
            return cls(None, None)
        finally:
            os.close(read_end)
        return cls(proc, os.fdopen(write_end, "w"))

    def _say(self, line: str) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError, ValueError):
                self._pipe.write(line + "\n")
                self._pipe.flush()

    def watch(self, pgid: int) -> None:
        self._say(f"pgid {pgid}")

    def release(self) -> None:
        """The runner cleaned up itself: the watchdog leaves without touching anything."""
        self._say("done")
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.close()
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)


def step_environment() -> dict[str, str]:
    """What a local step needs besides the worker's environment: where the platform tables are.

    The worker's environment is handed to the child process as it is (not a read of settings);
    the one value added is the platform's DSN (``CANDELA_DATABASE_URL`` or the embedded server).
    """
    from candela_sdk.settings import platform_dsn

    env = dict(os.environ)
    dsn = platform_dsn()
    if dsn:
        env["CANDELA_DATABASE_URL"] = dsn
    return env


class LocalStepOperator(BaseOperator):
    """Run a Candela processing service as a local process.

    :param service: service name from the catalogue (``candela services``)
    :param service_args: the service's parameters (templated; may come from XCom)
    :param step_timeout: seconds before the process is stopped (default: no limit besides the
        task's ``execution_timeout``)
    """

    template_fields: Sequence[str] = ("service_args",)
    template_fields_renderers = {"service_args": "json"}
    ui_color = "#d7ecff"

    def __init__(
        self,
        *,
        service: str,
        service_args: dict[str, Any],
        step_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.service_args = service_args
        self.step_timeout = step_timeout
        self._runner: LocalRunner | None = None

    def execute(self, context: Any) -> dict[str, Any]:
        argv = build_command(self.service, dict(self.service_args))
        from candela_operators.loglines import line_logger

        self._runner = LocalRunner(line_logger(self.log))  # each line at the service's level
        outcome = self._runner.run(argv, env=step_environment(), timeout=self.step_timeout)
        _spool_usage(self.service, context, outcome)
        return interpret(self.service, outcome.returncode, outcome.result, outcome.last_lines)

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.kill()


def _spool_usage(service: str, context: Any, outcome: ProcessOutcome) -> None:
    """Leave the step's consumption for the platform's collector (never fails the step)."""
    if outcome.usage is None:
        return
    try:
        from candela_sdk.settings import get_settings

        ti = context.get("ti")
        run = context.get("dag_run")
        record = {
            **outcome.usage,
            "service": service,
            "exit_code": outcome.returncode,
            "dag_id": getattr(ti, "dag_id", None),
            "run_id": getattr(ti, "run_id", None),
            "task_id": getattr(ti, "task_id", None),
            "map_index": getattr(ti, "map_index", -1),
            "try_number": getattr(ti, "try_number", None),
            "user": getattr(run, "triggering_user_name", None),
        }
        spool(get_settings().home, record)
    except Exception as exc:  # measuring must never fail a step
        import logging

        logging.getLogger(__name__).warning("could not record the step's usage: %s", exc)


def interpret(
    service: str, returncode: int, result: dict[str, Any] | None, last_lines: list[str]
) -> dict[str, Any]:
    """Map the contract's exit codes to task outcomes (2, bad input: failed, not retried)."""
    if returncode == 0:
        if result is None:
            raise AirflowException(f"{service} exited 0 but wrote no JSON result")
        return result
    message = failure_reason(result, last_lines)
    if returncode == NO_DATA_EXIT_CODE:
        raise AirflowSkipException(f"no data: {message}")
    raise step_failure(service, returncode, message)
