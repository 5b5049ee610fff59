"""Labelled STEM surveys from the simulator: training data for the U-Net and held-out data for benchmarks.

One seed fixes everything: a uniformly random recipe over `RecipeSpace()` (every route, every axis), its
noiseless sintered body on the given world, a specimen grown from that body and one survey frame with
the microscope's full noise and scan distortions. The label map and grain ids are the simulator's
hidden truth, distorted exactly like the image.

Seeds below `HELD_OUT_SEED0` are for training; benchmarks draw theirs from `HELD_OUT_SEED0` upwards, so
no benchmark image was ever seen in training.

Simulating a 512² frame takes about a second; `cached_survey` keeps frames on disk under
``$GRAINLOOP_CACHE_DIR`` (default ``~/.cache/grainloop``) / ``sim-frames``, keyed by the seed, the shape,
the pixel, the world's configuration and the source of the simulator, so a changed simulator never
serves a stale frame.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
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
CACHE_VERSION = 1


@dataclass(frozen=True)
class SimulatedSurvey:
    image: np.ndarray  # (2, H, W) float32: HAADF, BF counts
    label: np.ndarray  # (H, W) uint8, simulators.microstructure.LABEL_CLASSES
    grain_id: np.ndarray  # (H, W) int32, −1 in pores
    pixel_nm: float
    recipe: dict[str, Any]
    true_grain_size_nm: float  # the body's mean matrix grain size
    acquisition: dict[str, float] = field(default_factory=dict)
    """What the microscope knows of the frame: `electrons_per_px` (probe current × dwell), and the
    detectors' calibration `haadf_collection`, `bf_collection` (see `input_features.dose_scale`)."""


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
    stem = world.stem
    return SimulatedSurvey(
        image=np.stack([frame.haadf, frame.bf]).astype(np.float32),
        label=frame.label,
        grain_id=frame.grain_id,
        pixel_nm=pixel_nm,
        recipe=recipe,
        true_grain_size_nm=float(truth.body.grain_size_nm),
        acquisition={
            "electrons_per_px": frame.probe_current_pa * frame.dwell_us * stem.electrons_per_pa_us,
            "haadf_collection": stem.haadf_collection,
            "bf_collection": stem.bf_collection,
        },
    )


_SIMULATED_SURVEY_SOURCE = inspect.getsource(simulated_survey)


def cache_dir() -> Path:
    """``$GRAINLOOP_CACHE_DIR`` (default ``~/.cache/grainloop``) / ``sim-frames``."""
    root = os.environ.get("GRAINLOOP_CACHE_DIR") or Path.home() / ".cache" / "grainloop"
    return Path(root) / "sim-frames"


def _simulator_fingerprint(world: World) -> str:
    """A digest of the world's configuration and of every source a frame depends on."""
    digest = hashlib.sha256(world.model_dump_json().encode())
    digest.update(_SIMULATED_SURVEY_SOURCE.encode())
    repo = Path(__file__).resolve().parents[2]
    for path in [*sorted((repo / "simulators").glob("*.py")), repo / "agents" / "space.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_survey(
    seed: int,
    shape: tuple[int, int] = (512, 512),
    *,
    world: World | None = None,
    pixel_nm: float = DEFAULT_PIXEL_NM,
    directory: Path | None = None,
) -> SimulatedSurvey:
    """`simulated_survey`, read from the on-disk cache when this exact frame was simulated before."""
    world = world or World()
    key = f"{_simulator_fingerprint(world)}-v{CACHE_VERSION}-{seed}-{shape[0]}x{shape[1]}-{pixel_nm:g}nm"
    path = (directory or cache_dir()) / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                return SimulatedSurvey(
                    image=data["image"],
                    label=data["label"],
                    grain_id=data["grain_id"],
                    pixel_nm=float(meta["pixel_nm"]),
                    recipe=meta["recipe"],
                    true_grain_size_nm=float(meta["true_grain_size_nm"]),
                    acquisition=meta["acquisition"],
                )
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # a truncated or foreign file: simulate again and overwrite it
    survey = simulated_survey(seed, shape, world=world, pixel_nm=pixel_nm)
    meta = {
        "pixel_nm": survey.pixel_nm,
        "recipe": survey.recipe,
        "true_grain_size_nm": survey.true_grain_size_nm,
        "acquisition": survey.acquisition,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(partial, image=survey.image, label=survey.label, grain_id=survey.grain_id, meta=json.dumps(meta))
    partial.replace(path)  # atomic: a reader never sees half a file
    return survey
