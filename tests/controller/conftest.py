from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators

from controller.lab import Lab, build_sim_lab
from controller.observations import ObservationCollector
from controller.recipe import load_recipe
from simulators.faults import FaultConfig
from simulators.world import World

ROOT = Path(__file__).resolve().parents[2]
WEISS = load_recipe(ROOT / "examples" / "recipes" / "weiss-2015.toml")


class DocumentLog:
    """Validates every document against event-model's schemas and keeps them in order."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, dict]] = []

    def __call__(self, name: str, doc: dict) -> None:
        schema_validators[DocumentNames[name]].validate(doc)
        self.docs.append((name, doc))

    def of(self, name: str) -> list[dict]:
        return [d for n, d in self.docs if n == name]


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator:
    labs: list[Lab] = []

    def _make(time_acceleration: float = 1.0e5, **faults: object) -> Lab:
        world = World(time_acceleration=time_acceleration, faults=FaultConfig(**faults))
        lab = build_sim_lab(world, tmp_path / "data", truth_dir=tmp_path / "truth")
        labs.append(lab)
        return lab

    yield _make
    for lab in labs:
        lab.close()


@pytest.fixture
def engine_log() -> tuple[RunEngine, DocumentLog, ObservationCollector]:
    engine = RunEngine({}, call_returns_result=True)
    log, observations = DocumentLog(), ObservationCollector()
    engine.subscribe(log)
    engine.subscribe(observations)
    return engine, log, observations
