from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.faults import FaultConfig
from simulators.lab import SimLab
from simulators.world import World


def make_lab(**faults: object) -> SimLab:
    return SimLab(World(faults=FaultConfig(**faults)))


@pytest.fixture
def lab() -> Iterator[SimLab]:
    yield make_lab()
