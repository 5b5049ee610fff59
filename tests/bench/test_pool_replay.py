"""bench/pool_replay.py: the CSV → pool step, bad input, the random baseline against its hypergeometric
expectation, and a small end-to-end replay where the Bayesian agent must beat random."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench import pool_replay as pr


def write_csv(path: Path, header: list[str], rows: list[list[object]], bom: bool = False) -> Path:
    text = ",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


def grid_rows(n: int = 12) -> list[list[float]]:
    """An n × n grid of designs with a smooth, single-peaked yield (best at x = 0.6, y = 0.3)."""
    rows = []
    for x in np.linspace(0, 1, n):
        for y in np.linspace(0, 1, n):
            rows.append([round(x, 4), round(y, 4), round(1.0 - (x - 0.6) ** 2 - 2 * (y - 0.3) ** 2, 6)])
    return rows


def test_replicates_are_averaged_into_one_pool_row(tmp_path: Path) -> None:
    rows = [[i, 10 - i, float(i)] for i in range(10)] + [[0, 10, 3.0], [0, 10, 5.0], [2, 8, 4.0]]
    path = write_csv(tmp_path / "t.csv", ["a (%)", "b", "y"], rows, bom=True)
    pool = pr.load_pool(path, "y")
    assert pool.columns == ("a (%)", "b") and pool.n_rows == 13 and len(pool.X) == 10
    by_design = {tuple(x): y for x, y in zip(pool.X.tolist(), pool.y.tolist(), strict=True)}
    assert by_design[(0.0, 10.0)] == pytest.approx((0 + 3 + 5) / 3)
    assert by_design[(2.0, 8.0)] == pytest.approx(3.0)
    assert by_design[(5.0, 5.0)] == 5.0


def test_the_target_may_be_any_column_and_the_top_set_follows_the_direction(tmp_path: Path) -> None:
    rows = [[float(i), i, 7.0] for i in range(40)]  # target first; a constant input is allowed
    pool = pr.load_pool(write_csv(tmp_path / "t.csv", ["y", "x", "z"], rows), "y")
    assert pool.columns == ("x", "z") and len(pool.y) == 40
    assert np.flatnonzero(pr.top_mask(pool.y, "max")).tolist() == [38, 39]  # ceil(5 % of 40) = 2
    assert np.flatnonzero(pr.top_mask(pool.y, "min")).tolist() == [0, 1]
    assert pr.top_mask(np.arange(41.0), "max").sum() == 3  # ceil(2.05)


@pytest.mark.parametrize(
    ("header", "rows", "argv", "message"),
    [
        (None, None, ["--target", "y"], "no such file"),
        (["x", "y"], [[i, i] for i in range(12)], ["--target", "z"], "no column 'z'"),
        (["x", "y"], [[i, i] for i in range(11)] + [[1, "n/a"]], ["--target", "y"], ":13: y = 'n/a' is not a number"),
        (["x", "y"], [[i, i] for i in range(11)] + [[1, "nan"]], ["--target", "y"], "is not finite"),
        (["x", "y"], [[i, i] for i in range(11)] + [[1]], ["--target", "y"], "1 fields, the header has 2"),
        (["x", "y"], [[i % 4, i] for i in range(30)], ["--target", "y"], "4 unique designs"),
        (["y"], [[i] for i in range(12)], ["--target", "y"], "no input columns"),
        (["x", "y"], [[i, i - 3] for i in range(12)], ["--target", "y", "--log-target"], "positive target"),
        (["x", "y"], [[i, i] for i in range(12)], ["--target", "y", "--seeds", "0"], "--seeds must be"),
        (["x", "y"], [[i, i] for i in range(12)], ["--target", "y", "--plot", "/nonexistent/p.png"], "no such dir"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header, rows, argv, message
) -> None:
    path = tmp_path / "d.csv"
    if header is not None:
        write_csv(path, header, rows)
    assert pr.main([str(path), *argv, "--maximize"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_random_sampling_matches_the_hypergeometric_expectation() -> None:
    """Loosely: 2000 shuffles of a 120-design pool with 6 top designs against E[found] = n·K/N and the
    negative-hypergeometric mean/median of the experiments to find 3 (and all 6)."""
    n_pool, n_top = 120, 6
    top = np.zeros(n_pool, dtype=bool)
    top[[3, 40, 41, 77, 100, 119]] = True
    curves = pr.fraction_curves([pr.replay_random(top, s) for s in range(2000)], n_pool, n_top)
    n = np.arange(1, n_pool + 1)
    assert np.max(np.abs(curves.mean(axis=0) - n / n_pool)) < 0.03
    for k in (3, 6):
        measured = [pr.experiments_to(c, k / n_top) for c in curves]
        expected = pr.random_expectation(n_pool, n_top, k)
        assert expected["mean"] == pytest.approx(k * 121 / 7)
        assert np.mean(measured) == pytest.approx(expected["mean"], rel=0.04)
        assert abs(np.median(measured) - expected["median"]) <= 2


def test_experiments_to_and_curves_held_after_a_stop() -> None:
    replays = [pr.Replay(np.array([0, 1, 1, 2]), []), pr.Replay(np.array([1, 2]), [])]
    curves = pr.fraction_curves(replays, 6, 2)
    assert curves.tolist() == [[0, 0.5, 0.5, 1, 1, 1], [0.5, 1, 1, 1, 1, 1]]
    assert [pr.experiments_to(c, 0.5) for c in curves] == [2, 1]
    assert math.isinf(pr.experiments_to(np.zeros(4), 0.5))


def test_bayesian_replay_beats_random_on_a_smooth_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """144 designs, 8 on top around one smooth peak: the agent finds them all far sooner than random."""
    path = write_csv(tmp_path / "grid.csv", ["x", "y (a.u.)", "yield"], grid_rows())
    plot = tmp_path / "curves.png"
    argv = [str(path), "--target", "yield", "--maximize", "--seeds", "3", "--json", "--plot", str(plot)]
    assert pr.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    assert (summary["n_unique"], summary["n_top"], summary["half"]["designs"]) == (144, 8, 4)
    bo, rnd = summary["agents"]["bayesian"], summary["agents"]["random"]
    assert bo["median_to_all"] <= 40 and rnd["median_to_all"] >= 100, (bo, rnd)
    assert summary["af50"] >= 2.5 and summary["af50_analytic"] >= 2.5, summary
    assert summary["fallbacks"] == 0 and summary["ef"]["at"]["20"]["analytic"] > 2
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
