"""Gather the measured properties of each step from the document stream, one observation per step.

A resumed or re-run step can emit its measurement twice; observations are keyed by
`(campaign_id, step)` and the latest reading wins, so a campaign never counts a step twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bluesky.callbacks.core import CallbackBase

from controller.phase_balance import K_BALANCE_KEY, k_balance_wt_pct
from simulators.sample import ALL_PHASES

PROPERTY_KEYS = {
    "properties_trapped_field_t": "trapped_field_t",
    "properties_jc_a_per_cm2": "jc_a_per_cm2",
    "properties_tc_k": "tc_k",
    "properties_relative_density": "relative_density",
}
PHASE_PREFIX, PHASE_SUFFIX = "properties_phase_", "_wt_pct"
PHASE_NAMES = {name.lower(): name for name in ALL_PHASES}
"""Signal names are lower case; observations use the phases' own names."""


@dataclass
class Observation:
    campaign_id: str
    step: int
    sample_id: str
    recipe: dict[str, Any]
    properties: dict[str, float]
    phase_fractions_wt_pct: dict[str, float]
    run_uid: str
    readings: int = 1

    def outcomes(self) -> dict[str, float]:
        """What an agent is given: the properties and the K balance the XRD shows (`controller.phase_balance`)."""
        return {**self.properties, K_BALANCE_KEY: k_balance_wt_pct(self.phase_fractions_wt_pct)}


class ObservationCollector(CallbackBase):
    """Subscribe to a RunEngine; `observations[(campaign_id, step)]` holds the latest measurement."""

    def __init__(self) -> None:
        super().__init__()
        self.observations: dict[tuple[str, int], Observation] = {}
        self._starts: dict[str, dict[str, Any]] = {}
        self._streams: dict[str, str] = {}

    def start(self, doc: dict[str, Any]) -> None:
        if doc.get("stage") == "measure_properties":
            self._starts[doc["uid"]] = doc

    def descriptor(self, doc: dict[str, Any]) -> None:
        if doc["run_start"] in self._starts and doc.get("name") == "primary":
            self._streams[doc["uid"]] = doc["run_start"]

    def event(self, doc: dict[str, Any]) -> None:
        start_uid = self._streams.get(doc["descriptor"])
        if start_uid is None:
            return
        start = self._starts[start_uid]
        data = doc["data"]
        key = (start["campaign_id"], int(start["step"]))
        previous = self.observations.get(key)
        self.observations[key] = Observation(
            campaign_id=start["campaign_id"],
            step=int(start["step"]),
            sample_id=start["sample_id"],
            recipe=start["recipe"],
            properties={short: float(data[long]) for long, short in PROPERTY_KEYS.items() if long in data},
            phase_fractions_wt_pct={
                PHASE_NAMES[k[len(PHASE_PREFIX) : -len(PHASE_SUFFIX)]]: float(v)
                for k, v in data.items()
                if k.startswith(PHASE_PREFIX) and k.endswith(PHASE_SUFFIX) and float(v) > 0
            },
            run_uid=start_uid,
            readings=(previous.readings + 1) if previous else 1,
        )
