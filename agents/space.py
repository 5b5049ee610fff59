"""Search spaces: how a design (a recipe, or a row of a table) maps to the unit cube a GP works in.

Every space has two cubes:

- the *unit* cube `[0, 1]^unit_dim` that space-filling designs sample: one coordinate per free continuous
  axis plus one coordinate per categorical (the route: `route = routes[floor(u · n_routes)]`);
- the *feature* cube `[0, 1]^n_features` the models see: the same continuous coordinates plus a one-hot
  block for the categorical.

A continuous axis with bounds [lo, hi] maps to u = (t(x) − t(lo)) / (t(hi) − t(lo)) with t = log for
`LOG_AXES` and t = identity otherwise. The route-specific axes (`pressure_mpa`, `ramp_rate_c_per_min`)
are mapped through the bounds of the recipe's own route (`ROUTE_SPACE`), so u = 1 is "as hard as this
route goes" and one continuous GP serves every route. An axis that is degenerate for a route (a tube's
pressure, always 0) is encoded as 0 and held there during optimisation (`project`).

A recipe space also gives the models two process-physics inputs beside the feature cube
(`model_features_torch`), because the good recipes lie along ridges that are diagonal in the recipe's own
axes: the milling dose ln(rpm³ · t_mill · BPR) (science.md §3: D ∝ Ω³·t·BPR, so more speed buys less
time) and the thermal budget ln t_dwell − Q/(R·T_dwell) with Q = 250 kJ/mol (science.md §5: every
thermally activated step integrates t·e^(−Q/RT), so a hotter, shorter dwell does the same work).
What they buy is measured by bench/campaign.py (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.box_space import BoxSpace, PoolSpace
from agents.space_base import BalanceProbe, Space, check_finite
from controller.phase_balance import K_BALANCE_KEY
from controller.recipe import LOG_AXES, ROUTE_SPACE, Recipe, one_line, recipe_bounds

if TYPE_CHECKING:
    import torch

__all__ = ["AMBIENT_C", "BoxSpace", "PoolSpace", "RecipeSpace", "Space", "process_time_h", "space_from_state"]

AMBIENT_C = 25.0
"""Start and end temperature of a furnace programme (the simulators' ideal profile)."""
SINTER_ACTIVATION_J_PER_MOL = 250e3
"""Q of densification (science.md §5): the thermal budget's activation energy."""
GAS_CONSTANT_J_PER_MOL_K = 8.314
MODEL_FEATURES: dict[str, tuple[str, ...]] = {
    "milling_dose": ("mill_rpm", "milling_time_h", "ball_to_powder_ratio"),
    "thermal_budget": ("dwell_temperature_c", "dwell_time_h"),
}
"""Process-physics model inputs and the recipe fields each is computed from."""
K_BALANCE_TRIGGER_WT_PCT = 3.0
"""|KFe2As2 − FeAs| that calls for a K correction: the XRD's detection limit (science.md), i.e. one of the
two phases detected and the other not."""
K_EXCESS_STEP = 0.02
"""The K correction: a fifth of the K-excess range (0–0.10), as the earlier bound probes moved an axis."""
ROUTE_AXES = ("pressure_mpa", "ramp_rate_c_per_min")
FIELDS: tuple[str, ...] = tuple(Recipe.model_fields)


def process_time_h(recipe: Mapping[str, Any]) -> float:
    """Hours one recipe occupies the mill and the furnace.

    t = milling_time_h + dwell_time_h + 2 · (T_dwell − 25 °C) / (60 · ramp) — milling, the heating ramp, the
    dwell, and a controlled cool at the heating rate back to ambient (the ideal furnace profile).
    """
    rise = max(float(recipe["dwell_temperature_c"]) - AMBIENT_C, 0.0)
    ramp_h = rise / (60.0 * float(recipe["ramp_rate_c_per_min"]))
    return float(recipe["milling_time_h"]) + float(recipe["dwell_time_h"]) + 2.0 * ramp_h


class RecipeSpace(Space):
    """The `Recipe` decision space of one campaign: free axes, allowed routes, fixed parameters.

    `fixed` pins fields for the whole campaign (`{"route": "hip", "ball_to_powder_ratio": 10}`); `routes`
    restricts the route categorical; `bounds` narrows shared continuous axes inside the recipe's bounds;
    `physics_features` gives the models the milling dose and thermal budget as extra inputs.
    """

    kind = "recipe"
    input_warping_default = True
    """Recipe responses have cliffs beside plateaus (under-milled powder does not react): warp the inputs.
    Generic box and pool spaces do not warp by default: on a smooth response with a handful of points
    the warping's extra hyperparameters cost more than they bring (tests/agents/test_pool.py)."""

    def __init__(
        self,
        fixed: Mapping[str, Any] | None = None,
        *,
        routes: Sequence[str] | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        physics_features: bool = True,
    ) -> None:
        fixed = dict(fixed or {})
        self.physics_features = bool(physics_features)
        bounds = {k: (float(v[0]), float(v[1])) for k, v in (bounds or {}).items()}
        unknown = sorted(set(fixed) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field in fixed: {', '.join(unknown)}; expected one of {', '.join(FIELDS)}")
        allowed = list(routes) if routes is not None else list(ROUTE_SPACE)
        for route in [*allowed, *([fixed["route"]] if "route" in fixed else [])]:
            if route not in ROUTE_SPACE:
                raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTE_SPACE)}")
        if "route" in fixed:
            if fixed["route"] not in allowed:
                raise ValueError(f"fixed route {fixed['route']!r} is not among the allowed routes {allowed}")
            allowed = [fixed["route"]]
        if not allowed:
            raise ValueError("empty search space: no route allowed")
        self.routes: tuple[str, ...] = tuple(dict.fromkeys(allowed))
        self.fixed = fixed
        self.bounds_override = bounds
        shared = recipe_bounds()
        for name, (lo, hi) in bounds.items():
            if name not in shared:
                raise ValueError(f"bounds for {name!r} cannot be narrowed; narrowable: {', '.join(shared)}")
            s_lo, s_hi = shared[name]
            if not (s_lo <= lo <= hi <= s_hi):
                raise ValueError(f"bounds for {name} = [{lo:g}, {hi:g}] are outside the recipe's [{s_lo:g}, {s_hi:g}]")
            shared[name] = (lo, hi)
        # per-axis, per-route bounds (lo, hi) of every continuous field
        self._route_bounds: dict[str, dict[str, tuple[float, float]]] = {}
        for name in FIELDS:
            if name == "route":
                continue
            per_route = {r: ROUTE_SPACE[r][name] if name in ROUTE_AXES else shared[name] for r in self.routes}
            self._route_bounds[name] = {r: (float(lo), float(hi)) for r, (lo, hi) in per_route.items()}
        for name, value in fixed.items():
            if name == "route":
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"fixed {name} = {value!r} is not a number") from None
            check_finite(name, value)
            for route, (lo, hi) in self._route_bounds[name].items():
                if not lo <= value <= hi:
                    where = f" for route {route}" if name in ROUTE_AXES else ""
                    raise ValueError(f"fixed {name} = {value:g} is outside [{lo:g}, {hi:g}]{where}")
            fixed[name] = value
        self.axes: tuple[str, ...] = tuple(
            name
            for name, per_route in self._route_bounds.items()
            if name not in fixed and any(hi > lo for lo, hi in per_route.values())
        )
        if not self.axes and len(self.routes) == 1:
            raise ValueError("empty search space: every field is fixed")
        self.fields = FIELDS
        self.unit_dim = len(self.axes) + (1 if len(self.routes) > 1 else 0)
        self.n_features = len(self.axes) + (len(self.routes) if len(self.routes) > 1 else 0)
        self.cat_columns = tuple(range(len(self.axes), self.n_features))

    # -- bookkeeping ---------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fixed": self.fixed,
            "routes": list(self.routes),
            "bounds": {k: list(v) for k, v in self.bounds_override.items()},
            "physics_features": self.physics_features,
        }

    def validate(self, point: Mapping[str, Any]) -> dict[str, Any]:
        try:
            recipe = Recipe.model_validate({k: point[k] for k in FIELDS if k in point})
        except Exception as exc:  # pydantic's ValidationError, as one line
            msg = one_line(exc) if hasattr(exc, "errors") else str(exc)
            raise ValueError(f"invalid recipe: {msg}") from None
        return recipe.model_dump()

    def contains(self, point: Mapping[str, Any]) -> str | None:
        route = point["route"]
        if route not in self.routes:
            return f"route {route} is outside the campaign's routes {list(self.routes)}"
        for name, value in self.fixed.items():
            same = point[name] == value if name == "route" else math.isclose(point[name], value, rel_tol=1e-9)
            if not same:
                return f"{name} = {point[name]} differs from the campaign's fixed {value}"
        for name in self.axes:
            lo, hi = self._route_bounds[name][route]
            if not lo - 1e-9 * max(1.0, abs(hi)) <= point[name] <= hi + 1e-9 * max(1.0, abs(hi)):
                return f"{name} = {point[name]:g} is outside the campaign's [{lo:g}, {hi:g}]"
        return None

    # -- maps ----------------------------------------------------------------------------------------

    def _to_u(self, name: str, value: float, route: str) -> float:
        lo, hi = self._route_bounds[name][route]
        if hi <= lo:
            return 0.0
        if name in LOG_AXES:
            u = (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
        else:
            u = (value - lo) / (hi - lo)
        return min(max(u, 0.0), 1.0)

    def _from_u(self, name: str, u: float, route: str) -> float:
        lo, hi = self._route_bounds[name][route]
        if hi <= lo:
            return lo
        u = min(max(float(u), 0.0), 1.0)
        x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if name in LOG_AXES else lo + u * (hi - lo)
        return min(max(x, lo), hi)

    def encode(self, points: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.zeros((len(points), self.n_features))
        for i, point in enumerate(points):
            route = point["route"]
            for j, name in enumerate(self.axes):
                out[i, j] = self._to_u(name, float(point[name]), route)
            if self.cat_columns:
                out[i, self.cat_columns[self.routes.index(route)]] = 1.0
        return out

    def decode(self, X: np.ndarray) -> list[dict[str, Any]]:
        X = np.atleast_2d(np.asarray(X, dtype=float))
        points = []
        for row in X:
            route = self.routes[int(np.argmax(row[list(self.cat_columns)]))] if self.cat_columns else self.routes[0]
            point: dict[str, Any] = {}
            for name in FIELDS:
                if name == "route":
                    point[name] = route
                elif name in self.fixed:
                    point[name] = self.fixed[name]
                elif name in self.axes:
                    point[name] = self._from_u(name, row[self.axes.index(name)], route)
                else:  # degenerate for every allowed route
                    point[name] = self._route_bounds[name][route][0]
            points.append(point)
        return points

    def unit_to_features(self, U: np.ndarray) -> np.ndarray:
        U = np.atleast_2d(np.asarray(U, dtype=float))
        X = np.zeros((len(U), self.n_features))
        X[:, : len(self.axes)] = U[:, : len(self.axes)]
        if self.cat_columns:
            idx = np.minimum((U[:, -1] * len(self.routes)).astype(int), len(self.routes) - 1)
            X[np.arange(len(U)), np.asarray(self.cat_columns)[idx]] = 1.0
            X[:, : len(self.axes)] *= self._active_mask()[idx]
        return X

    def _active_mask(self) -> np.ndarray:
        """(n_routes, n_axes): 1 where the axis varies for that route, 0 where it is pinned (a tube's pressure)."""
        if not hasattr(self, "_mask"):
            bounds = self._route_bounds
            self._mask = np.array([[float(bounds[a][r][1] > bounds[a][r][0]) for a in self.axes] for r in self.routes])
        return self._mask

    def project(self, X: torch.Tensor) -> torch.Tensor:
        if not self.cat_columns:
            return X
        import torch

        mask = torch.as_tensor(self._active_mask(), dtype=X.dtype)
        onehot = X[..., list(self.cat_columns)]
        n_axes = len(self.axes)
        return torch.cat([X[..., :n_axes] * (onehot @ mask), X[..., n_axes:]], dim=-1)

    # -- outcomes computable from the design ----------------------------------------------------------

    def derived_outcome(self, name: str, point: Mapping[str, Any]) -> float | None:
        return process_time_h(point) if name == "process_time_h" else None

    def derived_outcome_torch(self, name: str, X: torch.Tensor) -> torch.Tensor | None:
        """process_time_h of encoded recipes, differentiable in X (a deterministic model for the acquisition)."""
        if name != "process_time_h":
            return None
        values = {f: self._field_torch(f, X) for f in ("milling_time_h", "dwell_time_h", "dwell_temperature_c")}
        ramp = self._field_torch("ramp_rate_c_per_min", X)
        rise = (values["dwell_temperature_c"] - AMBIENT_C).clamp_min(0.0)
        return values["milling_time_h"] + values["dwell_time_h"] + 2.0 * rise / (60.0 * ramp)

    def balance_probe(self) -> BalanceProbe | None:
        """The K balance the XRD shows (`controller.phase_balance`), corrected by the K excess if it is free."""
        if "k_excess" not in self.axes:
            return None
        bounds = self._route_bounds["k_excess"][self.routes[0]]
        return BalanceProbe(K_BALANCE_KEY, "k_excess", K_BALANCE_TRIGGER_WT_PCT, K_EXCESS_STEP, bounds)

    def model_features_torch(self, X: torch.Tensor) -> torch.Tensor | None:
        """Milling dose and thermal budget (those with a free field), each scaled to [0, 1] over the space."""
        import torch

        names = [n for n, used in MODEL_FEATURES.items() if set(used) & set(self.axes)]
        if not self.physics_features or not names:
            return None
        fields = [f for name in names for f in MODEL_FEATURES[name]]
        table = self._fields_torch(fields, X)
        columns = []
        for name in names:
            values = {f: table[..., fields.index(f)] for f in MODEL_FEATURES[name]}
            lo, hi = (_physics_feature(name, self._corner(MODEL_FEATURES[name], end)) for end in (0, 1))
            columns.append((_physics_feature(name, values) - lo) / (hi - lo))
        return torch.stack(columns, dim=-1)

    def _corner(self, fields: Sequence[str], end: int) -> dict[str, float]:
        """Each field at its lower (end 0) or upper (end 1) bound over all routes, or at its fixed value."""
        pick = min if end == 0 else max
        return {
            f: float(self.fixed[f]) if f in self.fixed else pick(b[end] for b in self._route_bounds[f].values())
            for f in fields
        }

    def _field_torch(self, name: str, X: torch.Tensor) -> torch.Tensor:
        return self._fields_torch((name,), X)[..., 0]

    def _fields_torch(self, names: Sequence[str], X: torch.Tensor) -> torch.Tensor:
        """Natural values (..., k) of the fields `names` of encoded recipes, differentiable in X.

        A fixed field is its value, a field that is no axis of the space its route's lower bound; an axis
        maps u ∈ [0, 1] (clamped) linearly or, for a log axis, geometrically between its route's bounds.
        """
        import torch

        key = (tuple(names), X.dtype)
        cache: dict[Any, Any] = self.__dict__.setdefault("_fields_cache", {})
        if key not in cache:
            rows_lo, rows_hi = [], []
            for r in self.routes:
                lo_r, hi_r = [], []
                for f in names:
                    lo, hi = (float(self.fixed[f]),) * 2 if f in self.fixed else self._route_bounds[f][r]
                    hi = hi if f in self.axes else lo
                    lo_r.append(lo)
                    hi_r.append(hi)
                rows_lo.append(lo_r)
                rows_hi.append(hi_r)
            lo_t = torch.tensor(rows_lo, dtype=X.dtype)
            hi_t = torch.tensor(rows_hi, dtype=X.dtype)
            geometric = torch.tensor([f in LOG_AXES for f in names])
            columns = [self.axes.index(f) if f in self.axes else 0 for f in names]
            cache[key] = (lo_t, hi_t, geometric, columns)
        lo_t, hi_t, geometric, columns = cache[key]
        if self.cat_columns:
            onehot = X[..., list(self.cat_columns)]
            lo, hi = onehot @ lo_t, onehot @ hi_t
        else:
            lo, hi = (t[0].expand(*X.shape[:-1], len(names)) for t in (lo_t, hi_t))
        u = X[..., columns].clamp(0.0, 1.0)
        if not bool(geometric.any()):
            return lo + u * (hi - lo)
        llo, lhi = torch.where(geometric, lo, 1.0).log(), torch.where(geometric, hi, 1.0).log()  # 1: harmless
        return torch.where(geometric, torch.exp(llo + u * (lhi - llo)), lo + u * (hi - lo))


def _physics_feature(name: str, v: Mapping[str, Any]) -> Any:
    """A `MODEL_FEATURES` quantity from field values (floats or tensors); increasing in every field."""
    from torch import log

    def ln(x: Any) -> Any:
        return log(x) if not isinstance(x, float) else math.log(x)

    if name == "milling_dose":
        return 3.0 * ln(v["mill_rpm"]) + ln(v["milling_time_h"]) + ln(v["ball_to_powder_ratio"])
    q_over_r = SINTER_ACTIVATION_J_PER_MOL / GAS_CONSTANT_J_PER_MOL_K
    return ln(v["dwell_time_h"]) - q_over_r / (v["dwell_temperature_c"] + 273.15)


def space_from_state(state: Mapping[str, Any]) -> Space:
    """Rebuild a space from `Space.to_state()`."""
    kind = state.get("kind")
    if kind == "recipe":
        bounds = {k: (float(v[0]), float(v[1])) for k, v in state.get("bounds", {}).items()}
        return RecipeSpace(
            state.get("fixed"),
            routes=state.get("routes"),
            bounds=bounds,
            physics_features=bool(state.get("physics_features", False)),
        )
    if kind == "box":
        return BoxSpace({k: (float(v[0]), float(v[1])) for k, v in state["bounds"].items()}, log_axes=state["log_axes"])
    if kind == "pool":
        return PoolSpace(state["columns"], np.asarray(state["rows"], dtype=float))
    raise ValueError(f"unknown space kind {kind!r}")
