"""`grainloop campaign`: bad requests are one line with status 2; a short run reports its best as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import main


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--fix", "colour=blue"], "unknown field in fixed"),
        (["--fix", "pressure_mpa=500"], "outside"),
        (["--fix", "mill_rpm=5000"], "outside"),
        (["--fix", "route"], "FIELD=VALUE"),
        (["--budget", "0"], "budget_experiments"),
        (["--world", "missing.toml"], "not found"),
    ],
)
def test_bad_campaign_requests_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], reason: str
) -> None:
    code = main(["campaign", "run", "--data-dir", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and reason in err, err
    assert not (tmp_path / "campaigns").exists()


def test_resuming_an_unknown_campaign_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "resume", "C-nope", "--data-dir", str(tmp_path)]) == 2
    assert "no campaign journal" in capsys.readouterr().err
    main(["campaign", "run", "--agent", "random", "--budget", "1", "--data-dir", str(tmp_path), "--json"])
    capsys.readouterr()
    assert main(["campaign", "resume", "C-nope", "--data-dir", str(tmp_path)]) == 2
    assert "no campaign 'C-nope'" in capsys.readouterr().err


def test_a_short_campaign_reports_its_best_and_a_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["campaign", "run", "--agent", "sobol", "--budget", "3", "--fix", "route=hip", "--data-dir", str(tmp_path)]
    assert main([*argv, "--id", "C-short", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["campaign_id"] == "C-short" and summary["observations"] == 3
    assert summary["best"] is None or summary["best"]["recipe"]["route"] == "hip"
    assert Path(summary["report_png"]).stat().st_size > 10_000
    assert main(["campaign", "report", "C-short", "--data-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["observations"] == 3
