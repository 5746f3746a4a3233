"""The interface every change model implements.

A model turns a pair of co-registered stacks into a per-pixel **change score** and calibrates
that score into a **change probability** (float 0–1). It sees the data only through a
:class:`~candela_changedetect.blocks.BlockSource`, so it must:

1. ``fit(source)``: compute the global statistics it needs in one or more passes over the blocks
   (never holding the whole raster), raising :class:`~candela_sdk.errors.NoDataError` when there
   are no (or too few) valid pixels;
2. ``score(block)``: map one block's ``(before, after, valid)`` arrays to a float32 score (NaN
   where not valid) — a pure per-pixel function of the block given the fitted statistics, so
   the result does not depend on the block size;
3. ``probability(score)``: the model's calibration of the score to a change probability
   (float64; the service thresholds it before storing it as float32);
4. ``auto_threshold()``: the probability threshold used for ``--threshold auto``;
5. ``score_at(probability)``: the score that a probability threshold corresponds to (reporting);
6. ``describe()``: JSON-able parameters and fitted statistics (provenance).

Options come from ``--model-options`` (JSON) and are validated by the model's ``Options`` model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    import numpy as np

    from candela_changedetect.blocks import Block, BlockSource
    from candela_changedetect.calibration import Cut


class ModelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


OptionsT = TypeVar("OptionsT", bound=ModelOptions)


@runtime_checkable
class ChangeModel(Protocol):
    name: ClassVar[str]

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ChangeModel: ...

    def fit(self, source: BlockSource) -> None: ...

    def score(self, block: Block) -> np.ndarray: ...

    def probability(self, score: np.ndarray) -> np.ndarray: ...

    def auto_threshold(self) -> float: ...

    def score_at(self, probability: float) -> float | None: ...

    def describe(self) -> dict[str, Any]: ...


def parse_options(model: str, schema: type[OptionsT], options: dict[str, Any]) -> OptionsT:
    """Validate ``options`` for ``model``; a bad option is an InputError with one sentence."""
    from candela_sdk.errors import InputError

    try:
        return schema.model_validate(options)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        ]
        raise InputError(f"invalid --model-options for {model}: {'; '.join(parts)}") from None


class CalibratedCut:
    """What a model with a fitted :class:`~candela_changedetect.calibration.Cut` answers for
    steps 3-5 of the interface: the cut's logistic probability, 0.5 at the automatic cut."""

    cut: Cut | None = None

    def probability(self, score: np.ndarray) -> np.ndarray:
        assert self.cut is not None, "fit() first"
        return self.cut.probability(score)

    def auto_threshold(self) -> float:
        return 0.5

    def score_at(self, probability: float) -> float | None:
        assert self.cut is not None, "fit() first"
        return self.cut.score_at(probability)


class CalibratedOptions(ModelOptions):
    """The automatic-threshold options every built-in model shares
    (:mod:`candela_changedetect.calibration`); each model sets its own defaults."""

    threshold_rule: Literal["robust_z", "nochange_z", "kittler", "otsu", "mixture"] = Field(
        "robust_z", description="automatic cut on ln(score) (see candela_changedetect.calibration)"
    )
    z: float = Field(4.0, gt=0, le=20, description="robust_z / nochange_z: cut in spreads")
    z_floor: float = Field(
        2.0, ge=0, le=20, description="mixture: the cut stays at least median + z_floor x MAD"
    )
