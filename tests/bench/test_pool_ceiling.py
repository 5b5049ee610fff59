"""bench/pool_ceiling.py: the leave-one-out algebra, a learnable pool against an unlearnable one, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import pool_ceiling as pc
from tests.bench.test_pool_replay import grid_rows, write_csv


def test_the_closed_form_is_the_prediction_from_all_other_points(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = [[*x, float(np.sin(6 * x[0]) + x[1] + 0.1 * rng.standard_normal())] for x in rng.uniform(size=(30, 2))]
    gp = pc.fit_pool_gp(pc.load_pool(write_csv(tmp_path / "t.csv", ["a", "b", "y"], rows), "y"), "max")
    loo = pc.leave_one_out_means(gp)
    (X,) = gp.train_inputs
    y, m = gp.train_targets, gp.mean_module.constant.detach()
    with torch.no_grad():
        for i in (0, 7, 29):
            rest = torch.arange(len(X)) != i
            K = gp.covar_module(X[rest]).to_dense() + gp.likelihood.noise * torch.eye(int(rest.sum()), dtype=X.dtype)
            k = gp.covar_module(X[i : i + 1], X[rest]).to_dense()
            direct = m + k @ torch.linalg.solve(K, y[rest] - m)
            assert loo[i] == pytest.approx(float(direct), abs=1e-8)


def test_a_smooth_pool_points_at_its_best_designs_and_a_shuffled_one_does_not(tmp_path: Path) -> None:
    rows = grid_rows(12)
    smooth = pc.ceiling(pc.load_pool(write_csv(tmp_path / "s.csv", ["x", "y", "v"], rows), "v"), "max")
    assert smooth["top_designs"] == 8 and smooth["spearman_loo"] > 0.95
    assert smooth["picks_to_half"] <= 6 and smooth["af50_with_the_rest_known"] > 10
    values = np.random.default_rng(0).permutation([r[2] for r in rows])
    shuffled = [[*r[:2], v] for r, v in zip(rows, values, strict=True)]
    noise = pc.ceiling(pc.load_pool(write_csv(tmp_path / "n.csv", ["x", "y", "v"], shuffled), "v"), "max")
    assert abs(noise["spearman_loo"]) < 0.3 and noise["picks_to_half"] >= 20
    assert noise["af50_with_the_rest_known"] < smooth["af50_with_the_rest_known"] / 4


def test_minimising_ranks_the_lowest_values_first(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["x", "y", "v"], [[*r[:2], -r[2]] for r in grid_rows(12)])
    best = pc.ceiling(pc.load_pool(path, "v"), "min")
    assert best["direction"] == "min" and best["spearman_loo"] > 0.95 and best["picks_to_half"] <= 6


def test_cli_json_and_a_bad_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "t.csv", ["x", "y", "v"], grid_rows(10))
    assert pc.main([str(path), "--target", "v", "--maximize", "--json", "--quick"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dataset"] == "t.csv" and summary["designs"] == 100 and summary["top_designs"] == 5
    assert len(summary["top_loo_ranks"]) == 5 and summary["random_to_half_median"] > 40
    assert pc.main([str(path), "--target", "w", "--maximize"]) == 2
    assert "no column 'w'" in capsys.readouterr().err
