"""The contract every search space fulfils (see `agents.space` for the two cubes it maps between)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} = {value} is not a finite number")


@dataclass(frozen=True)
class BalanceProbe:
    """A measured, signed outcome whose zero is the right composition, and the design axis that raises it.

    `BayesianAgent` reads it for its balance probes: when a stalled incumbent reads |outcome| ≥ `trigger`,
    it tries the incumbent with `axis` moved by `step` (the axis's own units) against the sign, within
    `bounds`.
    """

    outcome: str
    axis: str
    trigger: float
    step: float
    bounds: tuple[float, float]


class Space(ABC):
    """A decision space: validate designs, map them to and from the unit and feature cubes."""

    kind: str
    fields: tuple[str, ...]
    """Keys of a design dict, in order."""
    unit_dim: int
    """Dimension of the unit cube space-filling designs sample."""
    n_features: int
    """Dimension of the feature cube the models see."""
    cat_columns: tuple[int, ...] = ()
    """Feature columns of the one-hot block of the (single) categorical; empty if there is none."""
    input_warping_default: bool = False
    """Whether the agent's GPs warp their inputs unless `AcquisitionSettings.input_warping` says otherwise."""

    @abstractmethod
    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable description; `agents.space.space_from_state` rebuilds the space."""

    @abstractmethod
    def validate(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The design part of `point`, normalised; ValueError (one line) if it is not a valid design."""

    @abstractmethod
    def contains(self, point: Mapping[str, Any]) -> str | None:
        """None if a validated design lies in this campaign's space, else why not."""

    @abstractmethod
    def encode(self, points: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Designs → feature cube, shape (n, n_features)."""

    @abstractmethod
    def decode(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Feature cube → designs (clipped into bounds)."""

    @abstractmethod
    def unit_to_features(self, U: np.ndarray) -> np.ndarray:
        """Unit cube (n, unit_dim) → feature cube (n, n_features)."""

    def from_unit(self, U: np.ndarray) -> list[dict[str, Any]]:
        """Designs at points of the unit cube (what Sobol and random designs sample)."""
        return self.decode(self.unit_to_features(U))

    def project(self, X: torch.Tensor) -> torch.Tensor:
        """Canonical form of feature vectors (coordinates that do not apply are zeroed); differentiable."""
        return X

    def derived_outcome(self, name: str, point: Mapping[str, Any]) -> float | None:
        """An outcome computable from the design alone (e.g. process time), else None."""
        return None

    def derived_outcome_torch(self, name: str, X: torch.Tensor) -> torch.Tensor | None:
        """The same, on encoded designs (..., n_features) → (...), differentiable; None if not computable."""
        return None

    def model_features_torch(self, X: torch.Tensor) -> torch.Tensor | None:
        """Extra model inputs computed from encoded designs, (..., k) in [0, 1], differentiable; None if none."""
        return None

    def balance_probe(self) -> BalanceProbe | None:
        """The composition balance a measurement shows and the axis that corrects it, if the space has one."""
        return None
