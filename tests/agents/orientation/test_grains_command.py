"""`grainloop orient grains MAP`: one JSON object with --json, figures on request, one-line errors with exit 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from agents.orientation.ang_io import save_map
from agents.orientation.grains_command import add_grains_parser
from tests.agents.orientation.test_grains import SDSS_ANG, bicrystal, rz


def run(argv: list[str]) -> int:
    """Parse as the lead's `grainloop orient ...` will: an `orient` group holding `grains`."""
    parser = argparse.ArgumentParser(prog="grainloop")
    orient = parser.add_subparsers(dest="command", required=True).add_parser("orient")
    add_grains_parser(orient.add_subparsers(dest="action", required=True))
    args = parser.parse_args(["orient", *argv])
    return int(args.func(args))


@pytest.fixture
def bicrystal_ang(tmp_path: Path) -> Path:
    return save_map(bicrystal(rz(30.0)), tmp_path / "bicrystal.ang")


def test_json_is_one_object(bicrystal_ang: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["grains", str(bicrystal_ang), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # exactly one JSON document: orix's stdout notes are swallowed
    assert out.count("\n") == 1
    assert report["grain_count"] == 2
    assert report["critical_deg"] == 9.0 and report["threshold_deg"] == 5.0
    edges = np.array(report["misorientation_bin_edges_deg"])
    fractions = np.array(report["misorientation_length_fractions"])
    assert fractions[(edges[:-1] >= 27.5) & (edges[1:] <= 32.5)].sum() == pytest.approx(1.0)


def test_options_reach_the_analysis(bicrystal_ang: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["grains", str(bicrystal_ang), "--json", "--threshold-deg", "40", "--critical-deg", "12"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["grain_count"] == 1  # 30° < 40°: one grain
    assert report["critical_deg"] == 12.0


def test_figures_and_table(bicrystal_ang: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ipf, hist = tmp_path / "ipf.png", tmp_path / "hist.png"
    assert run(["grains", str(bicrystal_ang), "--ipf", str(ipf), "--hist", str(hist)]) == 0
    for path in (ipf, hist):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "grains" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["grains", "/nonexistent/map.ang"], "no such orientation map"),
        (["grains", "{bad}"], "cannot read"),
        (["grains", "{good}", "--threshold-deg", "0"], "threshold"),
        (["grains", "{good}", "--critical-deg", "-1"], "--critical-deg"),
        (["grains", "{good}", "--min-grain-px", "0"], "minimum grain size"),
        (["grains", "{good}", "--ipf", "out.jpg"], "PNG"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, bicrystal_ang: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.ang"
    bad.write_text("# a header\nthis is not an orientation map\n")
    argv = [a.replace("{bad}", str(bad)).replace("{good}", str(bicrystal_ang)) for a in argv]
    assert run(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_sdss_map_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not SDSS_ANG.is_file():
        pytest.skip(f"sdss-ebsd data not present at {SDSS_ANG} (it lives outside the repository)")
    ipf = tmp_path / "sdss_ipf.png"
    assert run(["grains", str(SDSS_ANG), "--json", "--ipf", str(ipf)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["phase_fractions"]) == {"austenite/austenite", "ferrite/ferrite", "not_indexed"}
    assert report["phases"]["austenite/austenite"]["sigma3_fraction"] > 0.4  # see test_grains.py for why
    assert ipf.stat().st_size < 300_000
