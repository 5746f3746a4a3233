"""The service contract: typed parameters in, URIs in and out, one JSON result out.

A service is declared once as a :class:`Service` (name, description, parameter model, image,
resources, entry function). From that single declaration come

* its command line (``argv_for``): what the local runner executes and what a pod runs,
* its CLI parser (``main``): the same flags, validated by the pydantic model,
* its catalogue entry (``describe``): description and JSON Schema of the parameters.

A service run prints its JSON result as the last line of stdout, writes it to
``$CANDELA_RESULT_PATH`` when set (the local runner) and to ``/airflow/xcom/return.json`` when
that folder exists (the Kubernetes XCom sidecar), and exits with the code of
:class:`candela_sdk.errors.ExitCode`. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from candela_sdk.errors import CandelaError, ExitCode
from candela_sdk.settings import get_settings

log = logging.getLogger(__name__)

XCOM_DIR = Path("/airflow/xcom")


class ServiceParams(BaseModel):
    """Base class of every service's parameters. Unknown parameters are an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


@dataclass(frozen=True)
class Resources:
    """What a step asks of the cluster.

    ``gpu``: the GPUs (``nvidia.com/gpu``) of a step whose *model* runs on a GPU
    (:meth:`Service.device_for`, declared per model in :mod:`candela_sdk.registry`); 0: never.
    Local scratch (a pod's ``emptyDir`` mounted as ``TMPDIR``, and its ``ephemeral-storage``):
    ``scratch_min`` plus ``scratch_per_input`` bytes per byte of the step's inputs
    (:attr:`Service.inputs`).
    """

    cpu: str = "1"
    memory: str = "2Gi"
    gpu: int = 0
    scratch_min: str = "1Gi"
    scratch_per_input: float = 0.0


@dataclass(frozen=True)
class Service:
    """One processing service, declared once."""

    name: str
    summary: str
    params: type[ServiceParams]
    run: Callable[[Any], dict[str, Any]]
    command: str  # the console script, e.g. "candela-preprocess"
    subcommand: str | None = None  # e.g. "detect" for "candela-changedetect detect"
    image: str = ""  # image name without registry/tag, e.g. "candela/preprocess"
    resources: Resources = field(default_factory=Resources)
    description: str = ""
    # the parameter naming the model the step runs (its device decides GPU or CPU), if any
    model_param: str | None = None
    # the parameters holding the URIs of the step's inputs (they size its scratch space)
    inputs: tuple[str, ...] = ()
    # whether the step reads the platform's tables (a pod then gets the DSN Secret)
    needs_database: bool = False

    def device_for(self, arguments: dict[str, Any] | ServiceParams) -> str:
        """``"gpu"`` when this step, with these arguments, runs on a GPU, else ``"cpu"``: the
        service has GPUs to ask for and the model named by :attr:`model_param` runs on a GPU
        (:func:`candela_sdk.registry.model_device`; an unknown model is bad input), unless
        ``CANDELA_GPU=false`` says the cluster has no GPU: then every step runs on CPU."""
        if not self.resources.gpu or not self.model_param:
            return "cpu"
        data = arguments.model_dump() if isinstance(arguments, ServiceParams) else arguments
        model = data.get(self.model_param)
        if model is None:
            default = self.params.model_fields[self.model_param].get_default()
            model = default if isinstance(default, str) else None
        if not model:
            return "cpu"
        from candela_sdk.registry import model_device
        from candela_sdk.settings import SdkSettings

        device = model_device(self.name, str(model))  # checks the model even on a CPU cluster
        return device if SdkSettings().gpu else "cpu"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "description": self.description or self.summary,
            "command": [self.command, *([self.subcommand] if self.subcommand else [])],
            "image": self.image,
            "resources": {
                "cpu": self.resources.cpu,
                "memory": self.resources.memory,
                "gpu": self.resources.gpu,
            },
            "parameters": self.params.model_json_schema(),
        }

    def argv_for(self, arguments: dict[str, Any] | ServiceParams) -> list[str]:
        """The command line that runs this service with ``arguments`` (validated first)."""
        params = (
            arguments
            if isinstance(arguments, ServiceParams)
            else self.params.model_validate(arguments)
        )
        argv = [self.command]
        if self.subcommand:
            argv.append(self.subcommand)
        return argv + params_to_argv(params)


# --- parameters <-> flags ----------------------------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, Sequence):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


def _is_number_list(annotation: Any) -> bool:
    """list[float] / list[int] (optional or not): given as ``1 2 3`` or ``1,2,3`` on the CLI."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_number_list(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin not in (list, tuple, Sequence):
        return False
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    return bool(args) and all(a in (float, int) for a in args)


_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBERS = re.compile(rf"^{_NUMBER}(?:\s*,\s*{_NUMBER})*,?$")


def _number_list_argv(service: Service, argv: list[str]) -> list[str]:
    """The values after a number-list flag as one ``--flag=v1,v2,…`` argument.

    argparse reads a value such as ``-0.68,44.83,-0.56,44.93`` (it starts with ``-`` and is not
    a plain negative number) as an unknown option; joined to its flag it is a value.
    """
    flags = {
        _flag(name)
        for name, info in service.params.model_fields.items()
        if _is_number_list(info.annotation)
    }
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in flags:
            values = []
            while i < len(argv) and _NUMBERS.match(argv[i].strip()):
                values.append(argv[i].strip().rstrip(","))
                i += 1
            if values:
                arg = f"{arg}={','.join(values)}"
        out.append(arg)
    return out


def _split_numbers(service: Service, raw: dict[str, Any]) -> dict[str, Any]:
    """Number lists given as ``W,S,E,N`` become their values."""
    for name, info in service.params.model_fields.items():
        if _is_number_list(info.annotation) and isinstance(raw.get(name), list):
            raw[name] = [p.strip() for v in raw[name] for p in str(v).split(",") if p.strip()]
    return raw


def _is_structured(annotation: Any) -> bool:
    """dict-like or model-like values travel as one JSON argument."""
    origin = typing.get_origin(annotation)
    if origin is dict or annotation is dict:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_structured(a) for a in typing.get_args(annotation))
    return False


def params_to_argv(params: ServiceParams) -> list[str]:
    """Flags for every parameter that differs from its default (lists repeat values)."""
    argv: list[str] = []
    fields = type(params).model_fields
    data = params.model_dump(mode="json")
    for name, info in fields.items():
        value = data[name]
        default = info.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump(mode="json")
        if value is None or value == default and not info.is_required():
            continue
        flag = _flag(name)
        if _is_bool(info.annotation):
            argv.append(flag if value else "--no-" + flag[2:])
        elif _is_structured(info.annotation):
            argv += [flag, json.dumps(value, separators=(",", ":"), sort_keys=True)]
        elif _is_list(info.annotation):
            argv += [flag, *[str(v) for v in value]]
        else:
            argv += [flag, str(value)]
    return argv


def build_parser(service: Service) -> argparse.ArgumentParser:
    prog = service.command + (f" {service.subcommand}" if service.subcommand else "")
    parser = argparse.ArgumentParser(
        prog=prog,
        description=service.description or service.summary,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, info in service.params.model_fields.items():
        flag = _flag(name)
        help_text = (info.description or "").replace("%", "%%")
        if _is_bool(info.annotation):
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif _is_structured(info.annotation):
            parser.add_argument(flag, dest=name, type=_json_arg, default=None, help=help_text)
        elif _is_list(info.annotation):
            if _is_number_list(info.annotation):
                help_text += " (values apart, or comma-separated)"
            parser.add_argument(flag, dest=name, nargs="+", default=None, help=help_text)
        else:
            parser.add_argument(
                flag,
                dest=name,
                default=None,
                required=False,
                help=help_text + (" (required)" if info.is_required() else ""),
            )
    parser.add_argument("--log-level", default=get_settings().log_level)
    return parser


def _json_arg(text: str) -> Any:
    from candela_sdk.jsonarg import read_json_arg

    try:
        return read_json_arg(text)
    except CandelaError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "parameters"
        parts.append(f"--{loc.replace('_', '-')}: {err['msg']}")
    return "; ".join(parts)


# --- running -----------------------------------------------------------------------------


# third-party libraries whose INFO output is noise in a step's log (Great Expectations' ~200
# lines per validation, TensorFlow's device probing): WARNING and above only, unless DEBUG
NOISY_LOGGERS = ("great_expectations", "tensorflow", "absl", "h5py", "matplotlib", "PIL", "numba")


def configure_logging(level: str = "INFO") -> None:
    """Service logging: ``LEVEL name: message`` lines on stderr (the runners pass the level on
    to Airflow's log), third-party noise silenced unless ``level`` is DEBUG."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(
        level=numeric,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if numeric > logging.DEBUG:
        # TensorFlow's C++ logging (CUDA/cuDNN probing): read when TF is imported, later
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def emit_result(result: dict[str, Any]) -> None:
    """Write the JSON result where every runner looks for it."""
    text = json.dumps(result, sort_keys=True, default=str)
    targets = []
    result_path = get_settings().result_path
    if result_path:
        targets.append(result_path)
    if XCOM_DIR.is_dir():
        targets.append(XCOM_DIR / "return.json")
    for target in targets:
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(target)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def execute(service: Service, params: ServiceParams) -> dict[str, Any]:
    """Run the service function and wrap its result in the common envelope."""
    started = time.monotonic()
    result = dict(service.run(params))
    result.setdefault("outcome", "done")
    result["service"] = service.name
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def main(service: Service, argv: Sequence[str] | None = None) -> int:
    """CLI entry point shared by every service: parse, validate, run, report, exit code."""
    parser = build_parser(service)
    ns = parser.parse_args(_number_list_argv(service, list(sys.argv[1:] if argv is None else argv)))
    configure_logging(ns.log_level)
    raw = {k: v for k, v in vars(ns).items() if k != "log_level" and v is not None}
    raw = _split_numbers(service, raw)
    try:
        params = service.params.model_validate(raw)
    except ValidationError as exc:
        msg = format_validation_error(exc)
        print(f"{parser.prog}: error: {msg}", file=sys.stderr)
        emit_result({"service": service.name, "outcome": "bad_input", "error": msg})
        return int(ExitCode.BAD_INPUT)
    try:
        result = execute(service, params)
    except CandelaError as exc:
        print(f"{parser.prog}: {exc.outcome.replace('_', ' ')}: {exc}", file=sys.stderr)
        emit_result({"service": service.name, "outcome": exc.outcome, "error": str(exc)})
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    emit_result(result)
    return int(ExitCode.OK)


def run_cli(service: Service) -> None:
    raise SystemExit(main(service))
