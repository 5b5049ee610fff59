"""The hidden side of the simulated lab: what really happened to each sample, kept from the controller.

The sim backends of `devices/` record here what their plants did (the milled powder, the furnace's real
temperature history) and draw what their detectors see from it. Nothing here is reachable through a
device's readings: the controller only ever sees measurements.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from simulators.clock import SimClock
from simulators.microstructure import Specimen
from simulators.mill import MilledPowder
from simulators.truth import Truth, truth_from_history
from simulators.world import World


@dataclass
class HiddenSample:
    sample_id: str
    powder: MilledPowder | None = None
    route: str | None = None
    furnace_history: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    truth: Truth | None = None
    specimen: Specimen | None = None
    uses: dict[str, int] = field(default_factory=dict)


class UnknownSampleError(LookupError):
    """A sample that was never made in this lab, or not far enough along for this step."""


class SimLab:
    """A world, its clock, and the hidden state of every sample made in it."""

    def __init__(self, world: World, clock: SimClock | None = None) -> None:
        self.world = world
        self.clock = clock or SimClock(world.time_acceleration)
        self._samples: dict[str, HiddenSample] = {}
        self._lock = threading.Lock()

    def rng(self, instrument: str, sample_id: str) -> np.random.Generator:
        """A fresh generator for the next use of `instrument` on `sample_id` (reproducible, order-free)."""
        with self._lock:
            sample = self._samples.setdefault(sample_id, HiddenSample(sample_id))
            n = sample.uses.get(instrument, 0)
            sample.uses[instrument] = n + 1
        return self.world.rng(instrument, sample_id, n)

    def record_milling(self, sample_id: str, powder: MilledPowder) -> None:
        with self._lock:
            sample = self._samples.setdefault(sample_id, HiddenSample(sample_id))
            sample.powder, sample.truth, sample.specimen = powder, None, None
            sample.furnace_history.clear()

    def record_sintering(
        self, sample_id: str, route: str, time_s: np.ndarray, temperature_c: np.ndarray, pressure_mpa: np.ndarray
    ) -> None:
        """Append a furnace run (a re-heat after an interruption adds to the thermal history)."""
        with self._lock:
            sample = self._get(sample_id, need_powder=True)
            offset = sample.furnace_history[-1][0][-1] + 1.0 if sample.furnace_history else 0.0
            sample.furnace_history.append((np.asarray(time_s) + offset, temperature_c, pressure_mpa))
            sample.route, sample.truth, sample.specimen = route, None, None

    def truth(self, sample_id: str) -> Truth:
        """The hidden state and true properties of a sintered sample."""
        with self._lock:
            sample = self._get(sample_id, need_powder=True)
            if not sample.furnace_history:
                raise UnknownSampleError(f"sample {sample_id} has not been sintered")
            if sample.truth is None:
                t, temp, p = (np.concatenate(parts) for parts in zip(*sample.furnace_history, strict=True))
                assert sample.powder is not None and sample.route is not None
                sample.truth = truth_from_history(self.world, sample.powder, sample.route, t, temp, p)
            return sample.truth

    def specimen(self, sample_id: str, extent_nm: float) -> Specimen:
        """The sample's section as the microscope sees it (grown once per sample, seeded)."""
        truth = self.truth(sample_id)
        with self._lock:
            sample = self._samples[sample_id]
            if sample.specimen is None:
                rng = self.world.rng("specimen", sample_id)
                sample.specimen = Specimen.grow(self.world.microstructure, truth.body, extent_nm, rng)
            return sample.specimen

    def _get(self, sample_id: str, *, need_powder: bool) -> HiddenSample:
        sample = self._samples.get(sample_id)
        if sample is None or (need_powder and sample.powder is None):
            raise UnknownSampleError(f"sample {sample_id} has not been milled in this lab")
        return sample
