"""How fast the simulated lab makes a sample, against the instrument time it stands for.

Anchor: the nominal instrument time of the same `make_sample` (milling, the furnace programme, STEM
loading and frames, the property measurement, transfers: what a real lab would spend). Prints wall
seconds, nominal hours, their ratio (the speed-up), and the compute overhead: wall time beyond the
accelerated clock's own waiting, i.e. what the simulators cost. Also the noiseless model's
evaluations per second (what `grainloop world optimum` leans on).

    .venv/bin/python bench/simulated_lab.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bluesky import RunEngine

from controller.lab import build_sim_lab
from controller.plans import make_sample
from controller.recipe import Recipe, load_recipe
from controller.run_recipe import sample_context
from devices.furnace import FurnaceProgram
from devices.property_station import MEASUREMENT_S
from devices.sample_store import TRANSFER_S
from devices.stem import LOAD_S
from simulators.truth import evaluate
from simulators.world import World

ROOT = Path(__file__).resolve().parents[1]


def time_make_sample(characterize: str, repeats: int) -> dict[str, float]:
    recipe = load_recipe(ROOT / "examples" / "recipes" / "weiss-2015.toml")
    walls = []
    for i in range(repeats):
        world = World(seed=100 + i)
        with tempfile.TemporaryDirectory() as tmp:
            lab = build_sim_lab(world, Path(tmp) / "data")
            RE = RunEngine({})
            t0 = time.perf_counter()
            RE(make_sample(lab, sample_context(recipe, world), characterize))  # type: ignore[arg-type]
            walls.append(time.perf_counter() - t0)
            lab.close()
    wall = sorted(walls)[len(walls) // 2]
    nominal_s = nominal_instrument_s(recipe, characterize, World())
    return {
        "wall_s": wall,
        "nominal_instrument_h": nominal_s / 3600.0,
        "speedup": nominal_s / wall,
        "compute_overhead_s": wall - nominal_s / World().time_acceleration,
    }


def nominal_instrument_s(recipe: Recipe, characterize: str, world: World) -> float:
    """What the same sample costs a real lab, from the instruments' nominal durations."""
    furnace = FurnaceProgram(
        "S",
        recipe.route,
        recipe.dwell_temperature_c,
        recipe.dwell_time_h,
        recipe.ramp_rate_c_per_min,
        recipe.pressure_mpa,
    )
    total = recipe.milling_time_h * 3600.0 + furnace.expected_duration_s() + MEASUREMENT_S + 4 * TRANSFER_S
    if characterize in ("image", "full"):
        s = world.stem
        total += LOAD_S + TRANSFER_S + s.shape_px * (s.shape_px * s.dwell_us + s.flyback_us) * 1e-6
    if characterize == "full":
        n = world.sped.scan_shape
        total += n[0] * n[1] * world.sped.dwell_ms * 1e-3
    return total


def model_rate(seconds: float) -> float:
    recipe = load_recipe(ROOT / "examples" / "recipes" / "weiss-2015.toml").model_dump()
    world, n, t0 = World(), 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        evaluate(world, **recipe)
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat per level (well under 2 minutes)")
    parser.add_argument("--json", action="store_true", help="one summary object on stdout")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    results = {level: time_make_sample(level, repeats) for level in ("none", "image", "full")}
    summary = {"make_sample": results, "noiseless_evaluations_per_s": model_rate(1.0 if args.quick else 5.0)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print("make_sample(weiss-2015) on the simulated lab vs the nominal instrument time (the anchor)")
    print(f"{'characterize':>12} {'wall / s':>9} {'nominal / h':>12} {'speed-up ×':>11} {'compute / s':>12}")
    for level, r in results.items():
        print(
            f"{level:>12} {r['wall_s']:9.2f} {r['nominal_instrument_h']:12.1f} {r['speedup']:11.0f}"
            f" {r['compute_overhead_s']:12.2f}"
        )
    print(f"noiseless model: {summary['noiseless_evaluations_per_s']:.0f} evaluations/s")


if __name__ == "__main__":
    main()
