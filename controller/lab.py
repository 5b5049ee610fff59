"""Compose a lab: the devices of one site, simulated (bound to a World) or EPICS."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ophyd import Signal

from devices.furnace import Furnace, SimFurnace
from devices.mill import PlanetaryMill, SimPlanetaryMill
from devices.property_station import PropertyStation, SimPropertyStation
from devices.sample_store import SampleStore
from devices.stem import SimStem, Stem
from simulators.lab import SimLab
from simulators.world import World


@dataclass
class Lab:
    """The instruments a plan may touch. `interlock` is the site's hardware interlock (1 = tripped)."""

    mill: PlanetaryMill
    furnace: Furnace
    stem: Stem
    properties: PropertyStation
    store: SampleStore
    interlock: Signal
    sim: SimLab | None = field(default=None, repr=False)
    """The hidden world behind a simulated lab (never handed to plans or agents)."""

    def devices(self) -> list:
        return [self.mill, self.furnace, self.stem, self.properties, self.store]

    def close(self) -> None:
        for dev in (self.mill, self.furnace):
            loop = getattr(dev, "loop", None)
            if loop is not None:
                loop.stop()


def build_sim_lab(world: World, data_dir: Path | str, truth_dir: Path | str | None = None) -> Lab:
    """A simulated lab on `world`; detector files go to `data_dir`, hidden truth to `truth_dir` if given."""
    sim = SimLab(world)
    return Lab(
        mill=SimPlanetaryMill(name="mill", lab=sim),
        furnace=SimFurnace(name="furnace", lab=sim),
        stem=SimStem(name="stem", lab=sim, data_dir=data_dir, truth_dir=truth_dir),
        properties=SimPropertyStation(name="properties", lab=sim),
        store=SampleStore(name="store", clock=sim.clock),
        interlock=Signal(name="interlock", value=0),
        sim=sim,
    )
