"""The command line: bad input is refused with one line and touches nothing; good input runs the lab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import main
from tests.controller.conftest import ROOT

WEISS_FILE = ROOT / "examples" / "recipes" / "weiss-2015.toml"


def write_recipe(tmp_path: Path, **changes: object) -> Path:
    lines = []
    for line in WEISS_FILE.read_text().splitlines():
        key = line.split("=")[0].strip()
        if key in changes:
            value = changes.pop(key)
            if value is None:
                continue
            line = f"{key} = {json.dumps(value)}"
        lines.append(line)
    lines += [f"{k} = {json.dumps(v)}" for k, v in changes.items()]
    path = tmp_path / "recipe.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"dwell_temperature_c": 1500}, "dwell_temperature_c"),
        ({"mill_rpm": 2000}, "mill_rpm"),
        ({"mill_rpm": "fast"}, "mill_rpm"),
        ({"colour": "blue"}, "colour"),
        ({"route": "microwave"}, "route"),
        ({"pressure_mpa": 150, "route": "sps", "ramp_rate_c_per_min": 80}, "pressure_mpa"),
        ({"ramp_rate_c_per_min": 60}, "ramp_rate_c_per_min"),
        ({"dwell_time_h": None}, "dwell_time_h"),
    ],
)
def test_bad_recipes_exit_non_zero_with_one_line_and_touch_no_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict, reason: str
) -> None:
    out = tmp_path / "run"
    code = main(["recipe", "run", str(write_recipe(tmp_path, **changes)), "--out", str(out), "--json"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and reason in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["recipe", "run", "missing.toml"],
        ["recipe", "run", str(WEISS_FILE), "--world", "missing-world.toml"],
        ["world", "optimum", "--world", "missing-world.toml"],
    ],
)
def test_missing_files_are_one_line_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not found" in err


def test_invalid_toml_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("mill_rpm = = 3\n")
    assert main(["recipe", "run", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_recipe_run_json_reports_properties_and_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["recipe", "run", str(WEISS_FILE), "--characterize", "none", "--json", "--reveal", "--out", str(tmp_path)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    props = result["properties"]
    assert set(props) >= {"trapped_field_t", "jc_a_per_cm2", "tc_k", "relative_density"}
    assert 0.8 <= props["trapped_field_t"] <= 1.4
    truth = result["truth"]["properties"]
    assert props["trapped_field_t"] == pytest.approx(truth["trapped_field_t"], rel=0.15)
    summary = Path(result["summary_png"])
    assert summary.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and summary.stat().st_size > 20_000
    # run files exist and hold valid JSON lines
    files = [Path(f) for f in result["files"]]
    assert len(files) == 3 and all(f.exists() for f in files)
    assert all(json.loads(line)[0] for f in files for line in f.read_text().splitlines())


def test_the_same_seed_gives_the_same_measurement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = []
    for seed in (11, 11, 12):
        argv = ["recipe", "run", str(WEISS_FILE), "--characterize", "none", "--json", "--seed", str(seed)]
        assert main([*argv, "--out", str(tmp_path / str(len(values)))]) == 0
        values.append(json.loads(capsys.readouterr().out)["properties"])
    assert values[0] == values[1]
    assert values[0] != values[2]


def test_world_optimum_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["world", "optimum", "--json", "--maxiter", "20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 1.6 <= out["trapped_field_t"] <= 3.0
    assert set(out["recipe"]) == {
        "mill_rpm",
        "milling_time_h",
        "ball_to_powder_ratio",
        "k_excess",
        "route",
        "dwell_temperature_c",
        "dwell_time_h",
        "pressure_mpa",
        "ramp_rate_c_per_min",
    }


def test_a_failed_experiment_exits_1_with_one_line_and_keeps_its_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = tmp_path / "faulty.toml"
    world.write_text('[faults]\nforced = ["thermocouple_open"]\n')
    argv = ["recipe", "run", str(WEISS_FILE), "--characterize", "none", "--json", "--world", str(world)]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().count("\n") == 0 and "thermocouple open circuit" in captured.err
    result = json.loads(captured.out)
    assert result["failure"].startswith("InterlockError") and result["properties"] == {}
    assert Path(result["summary_png"]).exists()
