"""The orientation agent: a real RunEngine's SPED run answered by a run of its own (`parent_uid`), rows
streamed one event at a time, and bad input that is published as a failed run, never raised."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from event_model import compose_run

from agents.orientation.agent import OrientationAgent
from controller.lab import build_sim_lab
from controller.plans import SampleContext, make_sample
from controller.recipe import load_recipe
from simulators.orientations import disorientation_deg
from simulators.sped import SpedConfig, simulate_scan
from simulators.world import World
from tests.controller.conftest import DocumentLog as Published

ROOT = Path(__file__).resolve().parents[3]
SPED = SpedConfig(scan_shape=(8, 8), step_nm=20.0)
TWO_GRAINS = np.array([[0.9, 0.1, 0.3, 0.2], [0.5, 0.5, -0.2, 0.6]])
"""Two off-axis orientations (normalised below), 30°+ apart."""


@dataclass(frozen=True)
class _Section:
    grain_id: np.ndarray
    phase_id: np.ndarray
    orientations: np.ndarray
    pixel_nm: float = SPED.step_nm


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("GRAINLOOP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def bicrystal():
    """An 8×8 scan: left half grain 0, right half grain 1, each with its known orientation."""
    q = TWO_GRAINS / np.linalg.norm(TWO_GRAINS, axis=1, keepdims=True)
    grain_id = np.zeros(SPED.scan_shape, np.int32)
    grain_id[:, SPED.scan_shape[1] // 2 :] = 1
    section = _Section(grain_id, np.zeros(SPED.scan_shape, np.uint8), q)
    return simulate_scan(SPED, section, np.random.default_rng(3)), q


def test_a_sped_run_is_answered_with_an_orientation_run(tmp_path: Path) -> None:
    world = World(time_acceleration=1e5, sped=SPED.model_dump(), stem={"shape_px": 128})
    lab = build_sim_lab(world, tmp_path / "data", truth_dir=tmp_path / "truth")
    log = Published()
    agent = OrientationAgent(resolution_deg=2.0, subscribers=[log])
    engine = RunEngine({})
    sources: list[dict] = []
    engine.subscribe(lambda name, doc: sources.append(doc) if name == "start" else None)
    engine.subscribe(agent)
    recipe = load_recipe(ROOT / "examples" / "recipes" / "weiss-2015.toml")
    try:
        engine(make_sample(lab, SampleContext("C-o", "S-0", 0, recipe), characterize="full"))
    finally:
        lab.close()
    assert [s["agent"] for s in log.of("start")] == ["orientation"]
    start, stop = log.of("start")[0], log.of("stop")[0]
    assert stop["exit_status"] == "success", stop.get("reason")
    sped_run = next(s for s in sources if s.get("stage") == "sped_scan")
    assert start["parent_uid"] == sped_run["uid"]
    assert (start["sample_id"], start["campaign_id"], start["step"]) == ("S-0", "C-o", 0)
    report = agent.reports[-1]
    assert report.scan_shape == SPED.scan_shape and report.step_nm == pytest.approx(SPED.step_nm)
    event = log.of("event")[0]
    assert event["data"]["grain_count"] == report.grain_count >= 1
    assert event["data"]["indexed_fraction"] == pytest.approx(report.indexed_fraction)


def test_rows_streamed_one_event_each_make_the_same_map(bicrystal, tmp_path: Path) -> None:
    scan, truth = bicrystal
    path = write_rows(tmp_path / "rows.h5", scan.data, scan.calibration_a_inv_per_px)
    log = Published()
    agent = OrientationAgent(resolution_deg=2.0, subscribers=[log])
    ny = SPED.scan_shape[0]
    docs = list(row_run_docs(path, ny, scan.calibration_a_inv_per_px, list(range(ny))))
    for name, doc in docs[:-1]:  # everything but the stop: the map is finished with the last row
        agent(name, doc)
    assert [d["exit_status"] for d in log.of("stop")] == ["success"]
    streamed = agent.reports[-1]
    assert streamed.scan_shape == SPED.scan_shape and streamed.indexed_fraction == 1.0
    # the same scan in one go gives the same map
    whole = agent.analyze_full(path)
    assert whole.report.grain_count == streamed.grain_count >= 2
    assert whole.report.misorientation_length_fractions == streamed.misorientation_length_fractions
    indexed = whole.crystal_map.rotations.data.reshape(*SPED.scan_shape, 4)
    left = disorientation_deg(indexed[:, :4].reshape(-1, 4), truth[0])
    right = disorientation_deg(indexed[:, 4:].reshape(-1, 4), truth[1])
    assert np.median(left) < 2.5 and np.median(right) < 2.5
    agent(*docs[-1])
    assert len(log.of("stop")) == 1  # the stop adds nothing: the map was already published


def test_rows_with_a_gap_end_in_a_failed_run_at_stop(bicrystal, tmp_path: Path) -> None:
    scan, _ = bicrystal
    path = write_rows(tmp_path / "rows.h5", scan.data, scan.calibration_a_inv_per_px)
    log = Published()
    agent = OrientationAgent(resolution_deg=2.0, subscribers=[log])
    for name, doc in row_run_docs(path, SPED.scan_shape[0], scan.calibration_a_inv_per_px, [0, 1, 3]):
        agent(name, doc)
    stops = log.of("stop")
    assert [d["exit_status"] for d in stops] == ["fail"] and "gaps" in stops[0]["reason"]


def test_bad_input_is_a_failed_run_and_the_agent_keeps_listening(bicrystal, tmp_path: Path) -> None:
    scan, _ = bicrystal
    log = Published()
    agent = OrientationAgent(resolution_deg=2.0, subscribers=[log])
    missing = tmp_path / "gone.h5"
    for name, doc in row_run_docs(missing, 2, scan.calibration_a_inv_per_px, [0]):
        agent(name, doc)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not hdf5 at all")
    for name, doc in row_run_docs(corrupt, 2, scan.calibration_a_inv_per_px, [0]):
        agent(name, doc)
    agent("event", {"descriptor": "unknown", "data": {}})  # stray documents are ignored
    agent("descriptor", {})  # malformed documents are logged, not raised
    reasons = [d["reason"] for d in log.of("stop")]
    assert all(d["exit_status"] == "fail" for d in log.of("stop"))
    assert any("gone.h5" in r for r in reasons) and any("corrupt.h5" in r for r in reasons)
    # and it still works
    path = write_rows(tmp_path / "rows.h5", scan.data, scan.calibration_a_inv_per_px)
    for name, doc in row_run_docs(path, SPED.scan_shape[0], scan.calibration_a_inv_per_px, list(range(8))):
        agent(name, doc)
    assert log.of("stop")[-1]["exit_status"] == "success"


def write_rows(path: Path, patterns: np.ndarray, calibration: float) -> Path:
    with h5py.File(path, "w") as fh:
        fh.create_dataset("entry/patterns", data=patterns)
        fh["entry"].attrs["calibration_a_inv_per_px"] = calibration
        fh["entry"].attrs["step_nm"] = SPED.step_nm
    return path


def row_run_docs(path: Path, ny: int, calibration: float, rows: list[int]) -> Iterator[tuple[str, dict]]:
    """A SPED run delivering one row per event: one resource, one datum per row (`row` kwarg)."""
    run = compose_run(metadata={"sample_id": "S-r"})
    yield "start", run.start_doc
    data_keys = {
        "stem_sped_patterns": {"source": "sim", "dtype": "array", "shape": [10, 64, 64], "external": "FILESTORE:"},
        "stem_sped_calibration_a_inv_per_px": {"source": "sim", "dtype": "number", "shape": []},
    }
    configuration = {"stem_sped": {"data": {"stem_sped_step_nm": SPED.step_nm, "stem_sped_scan_px": ny}}}
    descriptor = run.compose_descriptor(name="primary", data_keys=data_keys, configuration=configuration)
    yield "descriptor", descriptor.descriptor_doc
    bundle = run.compose_resource(
        spec="hdf5", root=str(path.parent), resource_path=path.name, resource_kwargs={"dataset": "entry/patterns"}
    )
    yield "resource", bundle.resource_doc
    for seq, row in enumerate(rows, start=1):
        datum = bundle.compose_datum(datum_kwargs={"row": row})
        yield "datum", datum
        data = {"stem_sped_patterns": datum["datum_id"], "stem_sped_calibration_a_inv_per_px": calibration}
        yield "event", descriptor.compose_event(data=data, timestamps={k: 0.0 for k in data}, seq_num=seq)
    yield "stop", run.compose_stop()


def test_an_aborted_scan_is_not_published_as_a_map(bicrystal, tmp_path: Path) -> None:
    scan, _ = bicrystal
    path = write_rows(tmp_path / "rows.h5", scan.data, scan.calibration_a_inv_per_px)
    log = Published()
    agent = OrientationAgent(resolution_deg=2.0, subscribers=[log])
    docs = list(row_run_docs(path, SPED.scan_shape[0], scan.calibration_a_inv_per_px, [0, 1, 2]))
    for name, doc in docs[:-1]:
        agent(name, doc)
    agent("stop", {**docs[-1][1], "exit_status": "abort", "reason": "operator abort"})
    stops = log.of("stop")
    assert [d["exit_status"] for d in stops] == ["fail"] and "'abort' after 3 of 8 rows" in stops[0]["reason"]
