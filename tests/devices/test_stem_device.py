"""The STEM: sample loading, the world's detector defaults, files and the beam-blank fault."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from devices.envelope import LimitError
from devices.furnace import FurnaceProgram, SimFurnace
from devices.mill import MillProgram, SimPlanetaryMill
from devices.stem import SimStem
from simulators.lab import SimLab, UnknownSampleError
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
