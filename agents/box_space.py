"""Generic continuous spaces: a box of named numeric columns, and a pool (a table of candidate designs).

These let the agents work on any dataset, e.g. the columns of a CSV replayed as a pool-based
benchmark: `PoolSpace(columns, X)` takes its bounds from the table (u = (x − min) / (max − min)).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from agents.space_base import Space, check_finite

__all__ = ["BoxSpace", "PoolSpace", "Space", "check_finite"]


class BoxSpace(Space):
    """Named continuous axes with bounds, optionally log-scaled; no categorical."""

    kind = "box"

    def __init__(self, bounds: Mapping[str, tuple[float, float]], *, log_axes: Collection[str] = ()) -> None:
        if not bounds:
            raise ValueError("empty search space: no columns")
        self.bounds = {str(k): (float(v[0]), float(v[1])) for k, v in bounds.items()}
        self.log_axes = frozenset(log_axes)
        unknown = sorted(self.log_axes - set(self.bounds))
        if unknown:
            raise ValueError(f"unknown log axis: {', '.join(unknown)}")
        for name, (lo, hi) in self.bounds.items():
            check_finite(f"{name} lower bound", lo)
            check_finite(f"{name} upper bound", hi)
            if lo > hi:
                raise ValueError(f"bounds for {name} are reversed: [{lo:g}, {hi:g}]")
            if name in self.log_axes and lo <= 0:
                raise ValueError(f"log axis {name} needs a positive lower bound, got {lo:g}")
        if all(hi == lo for lo, hi in self.bounds.values()):
            raise ValueError("empty search space: every column is constant")
        self.fields = tuple(self.bounds)
        self.unit_dim = self.n_features = len(self.fields)
        self.cat_columns = ()
        self._lo = np.array([lo for lo, _ in self.bounds.values()])
        self._hi = np.array([hi for _, hi in self.bounds.values()])
        self._log = np.array([name in self.log_axes for name in self.fields])
        t = self._t
        self._t_lo, self._t_span = t(self._lo), t(self._hi) - t(self._lo)

    def _t(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.where(self._log, np.log(np.where(self._log, x, 1.0)), x)

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "log_axes": sorted(self.log_axes),
        }

    def validate(self, point: Mapping[str, Any]) -> dict[str, Any]:
        missing = [f for f in self.fields if f not in point]
        if missing:
            raise ValueError(f"missing column(s): {', '.join(missing)}")
        out = {}
        for f in self.fields:
            try:
                value = float(point[f])
            except (TypeError, ValueError):
                raise ValueError(f"{f} = {point[f]!r} is not a number") from None
            check_finite(f, value)
            out[f] = value
        return out

    def contains(self, point: Mapping[str, Any]) -> str | None:
        for f, (lo, hi) in self.bounds.items():
            tol = 1e-9 * max(1.0, abs(lo), abs(hi))
            if not lo - tol <= point[f] <= hi + tol:
                return f"{f} = {point[f]:g} is outside [{lo:g}, {hi:g}]"
        return None

    def encode(self, points: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not points:
            return np.zeros((0, self.n_features))
        x = np.array([[float(p[f]) for f in self.fields] for p in points])
        return self.encode_array(x)

    def encode_array(self, x: np.ndarray) -> np.ndarray:
        """Rows of column values (in `fields` order) → feature cube."""
        span = np.where(self._t_span > 0, self._t_span, 1.0)
        u = (self._t(np.clip(x, self._lo, self._hi)) - self._t_lo) / span
        return np.clip(np.where(self._t_span > 0, u, 0.0), 0.0, 1.0)

    def decode(self, X: np.ndarray) -> list[dict[str, Any]]:
        X = np.clip(np.atleast_2d(np.asarray(X, dtype=float)), 0.0, 1.0)
        t = self._t_lo + X * self._t_span
        x = np.clip(np.where(self._log, np.exp(t), t), self._lo, self._hi)
        return [{f: float(v) for f, v in zip(self.fields, row, strict=True)} for row in x]

    def unit_to_features(self, U: np.ndarray) -> np.ndarray:
        return np.atleast_2d(np.asarray(U, dtype=float)).copy()


class PoolSpace(BoxSpace):
    """The box spanned by a table of candidate designs (rows of `X`, columns named `columns`).

    The rows are the default pool of an agent built on this space (see `BayesianAgent(pool=...)`).
    """

    kind = "pool"

    def __init__(self, columns: Sequence[str], X: np.ndarray | Sequence[Sequence[float]]) -> None:
        rows = np.asarray(X, dtype=float)
        columns = [str(c) for c in columns]
        if rows.ndim != 2 or rows.shape[0] == 0:
            raise ValueError("empty search space: the pool has no rows")
        if rows.shape[1] != len(columns):
            raise ValueError(f"the pool has {rows.shape[1]} columns but {len(columns)} names were given")
        if len(set(columns)) != len(columns):
            raise ValueError("column names must be unique")
        if not np.all(np.isfinite(rows)):
            raise ValueError("the pool holds NaN or infinite values")
        super().__init__({c: (float(rows[:, j].min()), float(rows[:, j].max())) for j, c in enumerate(columns)})
        self.rows = rows

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": list(self.fields), "rows": self.rows.tolist()}


def rows_to_points(space: Space, pool: Any) -> list[dict[str, Any]]:
    """A pool given as a 2-D array (columns in `space.fields` order) or a list of dicts → validated designs."""
    if isinstance(pool, np.ndarray) or (len(pool) and not isinstance(pool[0], Mapping)):
        arr = np.asarray(pool, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != len(space.fields):
            raise ValueError(f"a pool array needs shape (n, {len(space.fields)}) for columns {list(space.fields)}")
        pool = [dict(zip(space.fields, row.tolist(), strict=True)) for row in arr]
    if not pool:
        raise ValueError("empty search space: the pool has no rows")
    points = []
    for i, row in enumerate(pool):
        try:
            points.append(space.validate(row))
        except ValueError as exc:
            raise ValueError(f"pool row {i}: {exc}") from None
    return points
