"""Following a run or a job: a tqdm progress bar (steps finished out of steps known), and a
poll loop that rides out a platform that does not answer for a while (exponential backoff)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

#: step states after which a step will not change any more
FINISHED_STEP_STATES = {"success", "failed", "skipped", "upstream_failed", "removed"}


class Progress(Protocol):
    """What a progress bar must do (``tqdm.tqdm`` does)."""

    total: float | None
    n: float

    def refresh(self) -> Any: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...
    def close(self) -> Any: ...


class RunProgress:
    """A progress bar over a run's steps; ``None`` bar: nothing shown."""

    def __init__(self, bar: Progress | None) -> None:
        self.bar = bar

    @classmethod
    def make(cls, progress: bool | Progress, label: str) -> RunProgress:
        """``True``: a new tqdm bar (the notebook widget under Jupyter, text otherwise);
        ``False``: none; a bar object: that one."""
        if progress is False:
            return cls(None)
        if progress is True:
            from tqdm.auto import tqdm

            return cls(tqdm(total=0, desc=label, unit="step", dynamic_ncols=True))
        return cls(progress)

    def update(self, done: float, total: float, status: str) -> None:
        if self.bar is None:
            return
        self.bar.total = total
        self.bar.n = done
        self.bar.set_postfix_str(status, refresh=False)
        self.bar.refresh()

    def update_run(self, tasks: Mapping[str, str], state: str) -> None:
        """Steps finished out of steps known; the postfix names the steps running now."""
        done = sum(1 for s in tasks.values() if s in FINISHED_STEP_STATES)
        running = sorted({t.split("[")[0] for t, s in tasks.items() if s == "running"})
        self.update(done, len(tasks), state + (": " + ", ".join(running) if running else ""))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def poll_with_backoff(
    step: Callable[[], T],
    done: Callable[[T], bool],
    *,
    poll: float = 2.0,
    timeout: float = 3600,
    max_backoff: float = 30.0,
    transient: Callable[[Exception], bool] = lambda exc: False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``step`` every ``poll`` s until ``done`` of its value. A transient error is retried
    after ``poll``, then 2×, 4×… up to ``max_backoff`` s, while time is left; the first answer
    resets the wait. Any other error, or a transient one past ``timeout``, is raised; still not
    done after ``timeout`` raises :class:`TimeoutError`."""
    deadline = clock() + timeout
    wait = poll
    while True:
        try:
            value = step()
        except Exception as exc:
            if not transient(exc) or clock() + wait > deadline:
                raise
            sleep(wait)
            wait = min(max_backoff, wait * 2)
            continue
        wait = poll
        if done(value):
            return value
        if clock() + poll > deadline:
            raise TimeoutError(f"not finished after {timeout:.0f} s")
        sleep(poll)
