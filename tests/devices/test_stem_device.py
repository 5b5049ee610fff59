"""The STEM: sample loading, the world's detector defaults, files, SPED rows and the beam-blank fault."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from devices.envelope import LimitError
from devices.furnace import FurnaceProgram, SimFurnace
from devices.mill import MillProgram, SimPlanetaryMill
from devices.stem import SimStem
from simulators.faults import FaultConfig
from simulators.lab import SimLab, UnknownSampleError
from simulators.sped import SpedFaults, SpedScan, simulate_scan
from simulators.world import World
from tests.devices.conftest import make_lab


def sintered(lab: SimLab) -> SimLab:
    mill, furnace = SimPlanetaryMill(name="mill", lab=lab), SimFurnace(name="furnace", lab=lab)
    mill.set(MillProgram("S1", 600.0, 2.0, 10.0, 0.03)).wait(timeout=15)
    furnace.set(FurnaceProgram("S1", "hip", 650.0, 1.0, 10.0, 190.0)).wait(timeout=20)
    mill.loop.stop()
    furnace.loop.stop()
    return lab


def test_detector_defaults_come_from_the_world(tmp_path: Path) -> None:
    lab = make_lab()
    stem = SimStem(name="stem", lab=lab, data_dir=tmp_path)
    assert stem.survey.dwell_us.get() == lab.world.stem.dwell_us
    assert stem.survey.pixel_nm.get() == lab.world.stem.pixel_nm
    assert stem.sped.scan_px.get() == lab.world.sped.scan_shape[0]


def test_nothing_is_imaged_before_a_sample_is_loaded(tmp_path: Path) -> None:
    stem = SimStem(name="stem", lab=make_lab(), data_dir=tmp_path)
    with pytest.raises(LimitError, match="no sample loaded"):
        stem.survey.trigger()


def test_detector_settings_outside_the_envelope_are_refused_before_imaging(tmp_path: Path) -> None:
    lab = sintered(make_lab())
    stem = SimStem(name="stem", lab=lab, data_dir=tmp_path)
    stem.set("S1").wait(timeout=10)
    stem.sped.dwell_ms.put(5000.0)
    with pytest.raises(LimitError, match="SPED dwell"):
        stem.sped.trigger()
    assert stem.beam_blanked.get() is True


def test_a_sample_that_was_never_sintered_cannot_be_loaded(tmp_path: Path) -> None:
    stem = SimStem(name="stem", lab=make_lab(), data_dir=tmp_path)
    with pytest.raises(UnknownSampleError):
        stem.set("never-made").wait(timeout=10)
    assert stem.beam_blanked.get() is True


def test_a_survey_is_written_to_hdf5_and_the_beam_ends_blanked(tmp_path: Path) -> None:
    lab = sintered(make_lab())
    stem = SimStem(name="stem", lab=lab, data_dir=tmp_path / "data", truth_dir=tmp_path / "truth")
    stem.survey.shape_px.put(256)
    stem.set("S1").wait(timeout=10)
    stem.survey.trigger().wait(timeout=60)
    docs = list(stem.survey.collect_asset_docs())
    assert [name for name, _ in docs] == ["resource", "datum", "resource", "datum"]
    resource = docs[0][1]
    with h5py.File(Path(resource["root"]) / resource["resource_path"]) as fh:
        assert fh["entry/haadf"].shape == (256, 256)
    assert stem.beam_blanked.get() is True
    assert list((tmp_path / "truth").glob("survey-*.h5")), "truth kept aside when a truth_dir is given"


def test_the_beam_blank_fault_gives_an_empty_image(tmp_path: Path) -> None:
    images = []
    for forced in ((), ("beam_blank",)):
        lab = sintered(make_lab(forced=forced))
        stem = SimStem(name="stem", lab=lab, data_dir=tmp_path / str(len(images)))
        stem.survey.shape_px.put(128)
        stem.set("S1").wait(timeout=10)
        stem.survey.trigger().wait(timeout=60)
        resource = next(doc for name, doc in stem.survey.collect_asset_docs() if name == "resource")
        with h5py.File(Path(resource["root"]) / resource["resource_path"]) as fh:
            images.append(fh["entry/haadf"][()])
    assert images[1].mean() < 0.1 * images[0].mean()


def small_sped_lab(*forced: str) -> SimLab:
    """A sintered sample in a world whose SPED scans are 6 × 6 (fast to simulate)."""
    world = World(sped={"scan_shape": (6, 6)}, stem={"shape_px": 128}, faults=FaultConfig(forced=forced))
    return sintered(SimLab(world))


def scan_rows(stem: SimStem, rows: list[int]) -> list[tuple[str, dict]]:
    """Trigger `rows` of the SPED detector one after another; the asset documents they queued."""
    docs = []
    for y in rows:
        stem.sped.row.put(y)
        stem.sped.trigger().wait(timeout=60)
        assert stem.beam_blanked.get() is True, "no dose between rows"
        docs += list(stem.sped.collect_asset_docs())
    return docs


def expected_scan(lab: SimLab, stem: SimStem) -> SpedScan:
    """What the single-shot acquisition drew for the first scan of S1: the same rng use, faults, section."""
    rng = lab.world.rng("stem-sped", "S1", 0)
    faults_cfg = lab.world.faults
    dropout = faults_cfg.detector_dropout_fraction if faults_cfg.fires("detector_dropout", rng) else 0.0
    faults = SpedFaults(detector_dropout_fraction=dropout, beam_blank=faults_cfg.fires("beam_blank", rng))
    n, step_nm = int(stem.sped.scan_px.get()), float(stem.sped.step_nm.get())
    section = lab.specimen("S1", stem._specimen_extent_nm()).rasterize((0.0, 0.0), (n, n), step_nm)
    return simulate_scan(lab.world.sped, section, rng, faults=faults)


@pytest.mark.parametrize("forced", [(), ("detector_dropout",), ("beam_blank",)])
def test_a_sped_scan_is_acquired_row_by_row_into_one_file_identical_to_a_whole_scan(
    tmp_path: Path, forced: tuple[str, ...]
) -> None:
    lab = small_sped_lab(*forced)
    stem = SimStem(name="stem", lab=lab, data_dir=tmp_path / "data", truth_dir=tmp_path / "truth")
    stem.set("S1").wait(timeout=10)
    sleeps: list[float] = []
    sleep = lab.clock.sleep
    lab.clock.sleep = lambda s: (sleeps.append(s), sleep(s))[-1]  # type: ignore[method-assign]
    docs = scan_rows(stem, list(range(6)))

    assert [name for name, _ in docs] == ["resource"] + ["datum"] * 6, "one resource, then a datum per row"
    resource = docs[0][1]
    assert [d["datum_kwargs"] for _, d in docs[1:]] == [{"row": y} for y in range(6)]
    assert all(d["resource"] == resource["uid"] for _, d in docs[1:])
    assert sleeps == pytest.approx([6 * lab.world.sped.dwell_ms * 1e-3] * 6), "each row costs nx · dwell"
    assert stem.sped.patterns.describe()["stem_sped_patterns"]["shape"] == [6, 128, 128]

    expected = expected_scan(lab, stem)
    with h5py.File(Path(resource["root"]) / resource["resource_path"]) as fh:
        patterns = fh[resource["resource_kwargs"]["dataset"]]
        assert patterns.chunks == (1, 6, 128, 128)
        np.testing.assert_array_equal(patterns[()], expected.data)
        assert fh["entry"].attrs["calibration_a_inv_per_px"] == stem.sped.calibration_a_inv_per_px.get()
    (truth_file,) = (tmp_path / "truth").glob("sped-*.h5")
    with h5py.File(truth_file) as fh:
        np.testing.assert_array_equal(fh["orientations"][()], expected.true_orientations)
        np.testing.assert_array_equal(fh["phase"][()], expected.true_phase)
        np.testing.assert_array_equal(fh["dropped"][()], expected.dropped)
    if "detector_dropout" in forced:
        assert expected.dropped.any()
    if "beam_blank" in forced:
        assert expected.data.mean() < 0.1


def test_sped_rows_come_in_order_and_a_resume_re_takes_the_interrupted_row(tmp_path: Path) -> None:
    lab = small_sped_lab()
    stem = SimStem(name="stem", lab=lab, data_dir=tmp_path)
    stem.set("S1").wait(timeout=10)
    stem.sped.row.put(6)
    with pytest.raises(LimitError, match="outside the scan's rows"):
        stem.sped.trigger()
    stem.sped.row.put(2)
    with pytest.raises(LimitError, match="out of order"):
        stem.sped.trigger().wait(timeout=60)
    assert stem.beam_blanked.get() is True

    first = scan_rows(stem, [0, 1, 2])
    stem.stop(success=True)  # a pause: the scan waits
    again = scan_rows(stem, [2, 3])  # the resume re-takes row 2, then goes on
    assert [d["datum_kwargs"] for n, d in again if n == "datum"] == [{"row": 2}, {"row": 3}]
    stem.stop()  # anything else ends the scan
    stem.sped.row.put(4)
    with pytest.raises(LimitError, match="out of order"):
        stem.sped.trigger().wait(timeout=60)
    resource = first[0][1]
    with h5py.File(Path(resource["root"]) / resource["resource_path"]) as fh:
        patterns = fh["entry/patterns"]
        assert patterns[3].any() and not patterns[4].any(), "rows written as they were acquired"
    restarted = scan_rows(stem, [0])
    assert restarted[0][0] == "resource" and restarted[0][1]["uid"] != resource["uid"], "row 0 starts a new file"


def test_each_sped_row_has_its_own_timeout(tmp_path: Path) -> None:
    lab = small_sped_lab()
    stem = SimStem(name="stem", lab=lab, data_dir=tmp_path)
    stem.set("S1").wait(timeout=10)
    row_s = 6 * lab.world.sped.dwell_ms * 1e-3
    assert stem.sped.expected_instrument_s() == pytest.approx(row_s * 1.1)
    status = stem.sped.trigger()
    status.wait(timeout=60)
    assert status.timeout == pytest.approx(lab.clock.wall_seconds(3 * 1.1 * row_s) + 60.0)
