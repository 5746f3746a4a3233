"""A deferrable sensor that polls a function in the triggerer.

:class:`PollSensor` defers at once to :class:`PollTrigger`, which calls ``target`` (a dotted path
``module:function``, imported in the triggerer) every ``poll_s`` seconds in a thread, and fires
with its result as soon as that is truthy; the sensor then returns it (XCom). No worker slot is
held while waiting. An exception of ``target`` is logged and the polling goes on (a cloud or a
metrics source that is down for a while must not kill the watch).

Generic on purpose: the operators import only the SDK and Airflow; what is watched is named by
the DAG (e.g. ``candela.scaling.autoscaler:watch``).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger(__name__)


def resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"target must be 'module:function', not {target!r}")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise ValueError(f"{target} is not callable")
    return fn  # type: ignore[no-any-return]


class PollTrigger(BaseTrigger):
    def __init__(
        self, target: str, kwargs: dict[str, Any] | None = None, poll_s: float = 30
    ) -> None:
        super().__init__()
        self.target = target
        self.kwargs = kwargs or {}
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "candela_operators.poll.PollTrigger",
            {"target": self.target, "kwargs": self.kwargs, "poll_s": self.poll_s},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        fn = resolve(self.target)
        while True:
            try:
                result = await asyncio.to_thread(fn, **self.kwargs)
            except Exception as exc:
                log.warning("%s failed: %s; polling on", self.target, exc)
                result = None
            if result:
                yield TriggerEvent(result)
                return
            await asyncio.sleep(self.poll_s)


class PollSensor(BaseSensorOperator):
    """Wait (deferred) until ``target(**target_kwargs)`` returns something truthy."""

    template_fields = ("target_kwargs",)

    def __init__(
        self,
        *,
        target: str,
        target_kwargs: dict[str, Any] | None = None,
        poll_s: float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.target_kwargs = target_kwargs or {}
        self.poll_s = poll_s

    def poke(self, context: Any) -> PokeReturnValue:
        result = resolve(self.target)(**self.target_kwargs)
        return PokeReturnValue(is_done=bool(result), xcom_value=result)

    def execute(self, context: Any) -> Any:
        self.defer(
            trigger=PollTrigger(self.target, self.target_kwargs, self.poll_s),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        return event
