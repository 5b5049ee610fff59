"""Baselines behind the same protocol: uniform random and scrambled-Sobol designs over the unit cube.

Both ignore outcomes when proposing (they still keep the ledger and report best points). The unit cube
includes the route coordinate, route = routes[⌊u · n_routes⌋], so routes are sampled in equal shares.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import qmc

from agents.base import LedgerAgent
from agents.space import Space


class RandomAgent(LedgerAgent):
    """Independent uniform draws over the unit cube (numpy PCG64, seeded)."""

    kind = "random"

    def _propose(self, n: int) -> list[dict[str, Any]]:
        return self.space.from_unit(self._rng.random((n, self.space.unit_dim)))


class SobolStream:
    """A scrambled Sobol sequence that can be checkpointed: (seed, how many points were drawn)."""

    def __init__(self, dim: int, seed: int, drawn: int = 0) -> None:
        self.dim, self.seed, self.drawn = dim, seed, 0
        self._engine = qmc.Sobol(d=dim, scramble=True, seed=seed)
        if drawn:
            self._engine.fast_forward(drawn)
            self.drawn = drawn

    def draw(self, n: int) -> np.ndarray:
        if n <= 0:
            return np.zeros((0, self.dim))
        with warnings.catch_warnings():  # balance warnings for n not a power of 2: expected in a campaign
            warnings.simplefilter("ignore", UserWarning)
            U = self._engine.random(n)
        self.drawn += n
        return U

    def to_state(self) -> dict[str, int]:
        return {"seed": self.seed, "drawn": self.drawn}


class SobolAgent(LedgerAgent):
    """The next points of one scrambled Sobol sequence (scipy's, seeded)."""

    kind = "sobol"

    def __init__(self, space: Space, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self._sobol = SobolStream(space.unit_dim, self.seed)

    def _propose(self, n: int) -> list[dict[str, Any]]:
        return self.space.from_unit(self._sobol.draw(n))

    def _extra_state(self) -> dict[str, Any]:
        return {"sobol": self._sobol.to_state()}

    def _restore_extra(self, state: Mapping[str, Any]) -> None:
        self._sobol = SobolStream(self.space.unit_dim, state["sobol"]["seed"], state["sobol"]["drawn"])
