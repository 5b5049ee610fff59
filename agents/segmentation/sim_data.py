"""Labelled STEM surveys from the simulator: training data for the U-Net and held-out data for benchmarks.

One seed fixes everything: a uniformly random recipe over `RecipeSpace()` (every route, every axis), its
noiseless sintered body on the given world, a specimen grown from that body and one survey frame with
the microscope's full noise and scan distortions. The label map and grain ids are the simulator's
hidden truth, distorted exactly like the image.

Seeds below `HELD_OUT_SEED0` are for training; benchmarks draw theirs from `HELD_OUT_SEED0` upwards, so
no benchmark image was ever seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.space import RecipeSpace
from simulators.microstructure import Specimen
from simulators.stem import acquire_survey
from simulators.truth import evaluate
from simulators.world import World

HELD_OUT_SEED0 = 1_000_000
DEFAULT_PIXEL_NM = 2.0
"""The STEM device's default survey pixel."""


@dataclass(frozen=True)
class SimulatedSurvey:
    image: np.ndarray  # (2, H, W) float32: HAADF, BF counts
    label: np.ndarray  # (H, W) uint8, simulators.microstructure.LABEL_CLASSES
    grain_id: np.ndarray  # (H, W) int32, −1 in pores
    pixel_nm: float
    recipe: dict[str, Any]
    true_grain_size_nm: float  # the body's mean matrix grain size


def simulated_survey(
    seed: int,
    shape: tuple[int, int] = (512, 512),
    *,
    world: World | None = None,
    pixel_nm: float = DEFAULT_PIXEL_NM,
) -> SimulatedSurvey:
    """One labelled survey frame of a random recipe's sample, all randomness from `seed`."""
    world = world or World()
    rng = np.random.default_rng([seed, 0x5E6])
    space = RecipeSpace()
    recipe = space.decode(rng.random((1, space.n_features)))[0]
    truth = evaluate(world, **recipe)
    extent_nm = max(shape) * pixel_nm
    specimen = Specimen.grow(world.microstructure, truth.body, extent_nm, rng)
    frame = acquire_survey(world.stem, specimen, rng, shape=shape, pixel_nm=pixel_nm)
    return SimulatedSurvey(
        image=np.stack([frame.haadf, frame.bf]).astype(np.float32),
        label=frame.label,
        grain_id=frame.grain_id,
        pixel_nm=pixel_nm,
        recipe=recipe,
        true_grain_size_nm=float(truth.body.grain_size_nm),
    )
