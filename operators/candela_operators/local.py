"""The ``local`` runner: the service's CLI as a subprocess of the Airflow task."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from candela_operators.command import NO_DATA_EXIT_CODE, build_command


@dataclass
class ProcessOutcome:
    returncode: int
    result: dict[str, Any] | None
    last_lines: list[str]


class StepTimeout(Exception):
    pass


class LocalRunner:
    """Run a command, stream its output line by line, return its JSON result.

    The child runs in its own process group so that a timeout or a cancelled task stops it and
    everything it started.
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self._proc: subprocess.Popen[str] | None = None

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
        with tempfile.TemporaryDirectory(prefix="candela-step-") as tmp:
            result_path = Path(tmp) / "result.json"
            # the worker's environment goes to the child as it is (passing, not reading, settings)
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
                )
            except FileNotFoundError:
                raise AirflowException(f"command not found: {cmd[0]}") from None
            last: list[str] = []
            timer = None
            timed_out = threading.Event()
            if timeout:

                def _expire() -> None:
                    timed_out.set()
                    self.kill()

                timer = threading.Timer(timeout, _expire)
                timer.start()
            try:
                assert self._proc.stdout is not None
                for line in self._proc.stdout:
                    line = line.rstrip("\n")
                    self._log(line)
                    last = (last + [line])[-20:]
                rc = self._proc.wait()
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
            return ProcessOutcome(rc, result, last)

    def kill(self, grace: float = 10.0) -> None:
        from candela_sdk.processes import stop_group

        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        # the Popen keeps the exit status: wait on it, not on the group
        if not stop_group(proc.pid, grace, alive=lambda: proc.poll() is None):
            proc.wait()


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
        self._runner = LocalRunner(self.log.info)
        outcome = self._runner.run(argv, env=step_environment(), timeout=self.step_timeout)
        return interpret(self.service, outcome.returncode, outcome.result, outcome.last_lines)

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.kill()


def interpret(
    service: str, returncode: int, result: dict[str, Any] | None, last_lines: list[str]
) -> dict[str, Any]:
    """Map the contract's exit codes to task outcomes."""
    if returncode == 0:
        if result is None:
            raise AirflowException(f"{service} exited 0 but wrote no JSON result")
        return result
    message = (result or {}).get("error") or (last_lines[-1] if last_lines else "")
    if returncode == NO_DATA_EXIT_CODE:
        raise AirflowSkipException(f"no data: {message}")
    raise AirflowException(f"{service} failed (exit code {returncode}): {message}")
