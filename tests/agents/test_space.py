from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents.space import BoxSpace, PoolSpace, RecipeSpace, process_time_h, space_from_state
from controller.recipe import Recipe


def test_round_trip_over_every_route() -> None:
    space = RecipeSpace()
    U = np.random.default_rng(0).random((60, space.unit_dim))
    recipes = space.from_unit(U)
    assert {r["route"] for r in recipes} == {"tube", "hip", "sps"}
    for r in recipes:
        Recipe.model_validate(r)
    again = space.decode(space.encode(recipes))
    for a, b in zip(recipes, again, strict=True):
        assert a["route"] == b["route"]
        for k in space.axes:
            assert math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12)


def test_log_axes_and_route_specific_bounds() -> None:
    space = RecipeSpace()
    u = {name: 0.5 for name in space.axes}
    sps = space.decode(np.array([[u[a] for a in space.axes] + [0.0, 0.0, 1.0]]))[0]
    assert sps["route"] == "sps"
    assert math.isclose(sps["milling_time_h"], math.sqrt(0.25 * 40.0))  # geometric midpoint on a log axis
    assert math.isclose(sps["ramp_rate_c_per_min"], 75.0)  # SPS ramps 50–100
    assert math.isclose(sps["pressure_mpa"], 50.0)  # SPS die 0–100 MPa
    hip = space.decode(np.array([[1.0] * len(space.axes) + [0.0, 1.0, 0.0]]))[0]
    assert hip["pressure_mpa"] == 200.0 and hip["ramp_rate_c_per_min"] == 20.0
    tube = space.decode(np.array([[1.0] * len(space.axes) + [1.0, 0.0, 0.0]]))[0]
    assert tube["pressure_mpa"] == 0.0
    # a tube's pressure coordinate is inactive: encoded as 0 and projected back to 0 during optimisation
    X = torch.tensor(space.encode([tube]))
    assert X[0, space.axes.index("pressure_mpa")] == 0.0
    X[0, space.axes.index("pressure_mpa")] = 0.7
    assert space.project(X)[0, space.axes.index("pressure_mpa")] == 0.0


def test_fixed_parameters_are_respected_and_dropped_from_the_features() -> None:
    space = RecipeSpace({"route": "hip", "ball_to_powder_ratio": 10})
    assert "ball_to_powder_ratio" not in space.axes and space.cat_columns == ()
    for r in space.from_unit(np.random.default_rng(1).random((20, space.unit_dim))):
        assert r["route"] == "hip" and r["ball_to_powder_ratio"] == 10.0
        Recipe.model_validate(r)
    assert space.contains({**r, "route": "tube", "pressure_mpa": 0.0, "ramp_rate_c_per_min": 5.0}) is not None
    assert space.contains({**r, "ball_to_powder_ratio": 12.0}) is not None
    assert space.contains(r) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fixed": {"colour": "red"}}, "unknown field in fixed: colour"),
        ({"fixed": {"mill_rpm": 5000}}, "fixed mill_rpm = 5000 is outside [200, 800]"),
        ({"fixed": {"pressure_mpa": 150}}, "outside [0, 0] for route tube"),
        ({"fixed": {"route": "arc-melt"}}, "unknown route 'arc-melt'"),
        ({"routes": ["hip", "laser"]}, "unknown route 'laser'"),
        ({"routes": []}, "empty search space"),
        ({"fixed": {"route": "hip"}, "routes": ["sps"]}, "not among the allowed routes"),
        ({"bounds": {"mill_rpm": (100, 300)}}, "outside the recipe's [200, 800]"),
        ({"bounds": {"pressure_mpa": (0, 10)}}, "cannot be narrowed"),
    ],
)
def test_bad_configurations_say_why_in_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        RecipeSpace(kwargs.get("fixed"), routes=kwargs.get("routes"), bounds=kwargs.get("bounds"))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_everything_fixed_is_an_empty_space() -> None:
    recipe = RecipeSpace().from_unit(np.full((1, 9), 0.5))[0]
    with pytest.raises(ValueError, match="empty search space"):
        RecipeSpace(recipe)


def test_process_time_counts_milling_ramps_and_dwell() -> None:
    recipe = {
        "milling_time_h": 2.0,
        "dwell_time_h": 10.0,
        "dwell_temperature_c": 625.0,  # 600 K above ambient
        "ramp_rate_c_per_min": 10.0,  # 1 h up, 1 h down
    }
    assert process_time_h(recipe) == pytest.approx(14.0)
    space = RecipeSpace()
    recipes = space.from_unit(np.random.default_rng(2).random((10, space.unit_dim)))
    torch_values = space.derived_outcome_torch("process_time_h", torch.tensor(space.encode(recipes)))
    np.testing.assert_allclose(torch_values.numpy(), [process_time_h(r) for r in recipes], rtol=1e-9)


def test_box_and_pool_spaces() -> None:
    box = BoxSpace({"flow": (1.0, 100.0), "ratio": (0.0, 1.0)}, log_axes=["flow"])
    assert box.decode(np.array([[0.5, 0.25]]))[0] == pytest.approx({"flow": 10.0, "ratio": 0.25})
    pool = PoolSpace(["a", "b"], [[0.0, 10.0], [1.0, 30.0], [0.5, 20.0]])
    np.testing.assert_allclose(pool.encode([{"a": 0.5, "b": 20.0}]), [[0.5, 0.5]])
    for space in (box, pool, RecipeSpace({"route": "sps"}, bounds={"mill_rpm": (300, 600)})):
        rebuilt = space_from_state(space.to_state())
        assert rebuilt.to_state() == space.to_state()
    with pytest.raises(ValueError, match="no rows"):
        PoolSpace(["a"], np.zeros((0, 1)))
    with pytest.raises(ValueError, match="3 columns but 2 names"):
        PoolSpace(["a", "b"], np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        PoolSpace(["a"], [[1.0], [math.nan]])
    with pytest.raises(ValueError, match="positive lower bound"):
        BoxSpace({"t": (0.0, 1.0)}, log_axes=["t"])
    with pytest.raises(ValueError, match="empty search space"):
        BoxSpace({})


def test_model_features_follow_the_physics_and_stay_in_the_unit_interval() -> None:
    space = RecipeSpace()
    slow = {"mill_rpm": 300.0, "milling_time_h": 8.0, "ball_to_powder_ratio": 10.0, "k_excess": 0.03,
            "route": "hip", "dwell_temperature_c": 650.0, "dwell_time_h": 8.0, "pressure_mpa": 100.0,
            "ramp_rate_c_per_min": 5.0}  # fmt: skip
    # 8× the speed cubed for 1/8 of the time: the same dose; 40 K hotter for the matching shorter dwell
    q_over_r = 250e3 / 8.314
    shorter_h = 8.0 * math.exp(q_over_r * (1 / 963.15 - 1 / 923.15))
    fast = {**slow, "mill_rpm": 600.0, "milling_time_h": 1.0, "dwell_temperature_c": 690.0, "dwell_time_h": shorter_h}
    hotter = {**slow, "dwell_temperature_c": 690.0}
    X = torch.as_tensor(space.encode([slow, fast, hotter]))
    f = space.model_features_torch(X)
    assert f is not None and f.shape == (3, 2)
    assert torch.allclose(f[0], f[1], atol=1e-9)  # same dose, same thermal budget
    assert f[2, 1] > f[0, 1] and f[2, 0] == f[0, 0]
    U = torch.as_tensor(space.unit_to_features(np.random.default_rng(0).random((500, space.unit_dim))))
    everything = space.model_features_torch(U)
    assert everything.min() >= 0.0 and everything.max() <= 1.0
    corners = space.model_features_torch(torch.as_tensor(space.unit_to_features(np.array([[0.0] * 8 + [0.5]]))))
    assert torch.allclose(corners, torch.zeros(1, 2, dtype=torch.float64))


def test_model_features_only_where_a_field_is_free_and_they_survive_a_checkpoint() -> None:
    milled = RecipeSpace(fixed={"mill_rpm": 600.0, "milling_time_h": 2.0, "ball_to_powder_ratio": 10.0})
    X = torch.as_tensor(milled.unit_to_features(np.random.default_rng(1).random((4, milled.unit_dim))))
    assert milled.model_features_torch(X).shape == (4, 1)  # the thermal budget only
    assert RecipeSpace(physics_features=False).model_features_torch(X) is None
    assert space_from_state(milled.to_state()).model_features_torch(X).shape == (4, 1)
    assert space_from_state({**milled.to_state(), "physics_features": False}).model_features_torch(X) is None
