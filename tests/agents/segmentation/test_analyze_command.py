"""`grainloop seg analyze`: JSON, the table, the overlay, pixel size from the file, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from agents.segmentation.sim_data import HELD_OUT_SEED0, simulated_survey
from controller.cli import main


@pytest.fixture(scope="module")
def survey_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    survey = simulated_survey(HELD_OUT_SEED0 + 4, shape=(192, 192))
    path = tmp_path_factory.mktemp("seg") / "survey.h5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("entry/haadf", data=survey.image[0])
        fh.create_dataset("entry/bf", data=survey.image[1])
        fh["entry"].attrs["pixel_nm"] = 1.5
    return path


def test_json_report_with_the_pixel_size_from_the_file(survey_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["seg", "analyze", str(survey_file), "--model", "classical", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "classical" and report["pixel_nm"] == 1.5 and report["pixel_nm_source"] == "file"
    assert 0.0 < report["porosity"] < 1.0 and report["grain_count"] > 0
    assert sum(report["class_fractions"].values()) == pytest.approx(1.0)


def test_table_overlay_and_the_default_pixel_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    survey = simulated_survey(HELD_OUT_SEED0 + 4, shape=(128, 128))
    np.save(tmp_path / "s.npy", survey.image)
    overlay = tmp_path / "out" / "overlay.png"
    assert main(["seg", "analyze", str(tmp_path / "s.npy"), "--model", "classical", "--overlay", str(overlay)]) == 0
    out = capsys.readouterr().out
    assert "porosity" in out and "assumed 2 nm" in out
    assert overlay.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["seg", "analyze", str(tmp_path / "s.npy"), "--model", "classical", "--pixel-nm", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pixel_nm"] == 3.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.tif"], "no such file"),
        (["corrupt.png"], "cannot read"),
        (["ok.npy", "--model", "no-such-model"], "unknown model"),
        (["gray.npy"], "needs 2 channels"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, args, message) -> None:
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    np.save(tmp_path / "ok.npy", np.ones((2, 32, 32), np.float32))
    np.save(tmp_path / "gray.npy", np.random.default_rng(0).random((32, 32)).astype(np.float32))
    argv = ["seg", "analyze", str(tmp_path / args[0]), *args[1:]]
    if "--model" not in argv:
        argv += ["--model", "classical"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grainloop: error:") and message in err and "\n" not in err


def test_the_default_model_analyses_a_survey(survey_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["seg", "analyze", str(survey_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "sim-122" and report["grain_count"] > 0
