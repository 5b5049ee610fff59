"""Maximising the acquisition: sequential greedy batches over the feature cube, or over a pool of rows.

Continuous (and mixed) spaces: for each of the q greedy steps, score `raw_samples` raw designs in one
batched call — a share of them Gaussian perturbations of the best designs observed so far (`centres`,
σ drawn from `LOCAL_SIGMAS`, clamped to the cube, a share `LOCAL_OTHER_CATEGORY` of them moved to a
random route), the rest uniform over the unit cube (every route in equal shares) — start L-BFGS-B from
the best raw design of each route plus Boltzmann-weighted others (`initialize_q_batch`), holding each
start's route one-hot fixed (`fixed_features` with a value per start) and inactive coordinates at 0
(`space.project`); the best result joins `X_pending` for the next step. This is `optimize_acqf_mixed`'s
search, but the routes share one L-BFGS-B batch instead of one optimisation per route and step, so its
cost does not grow with the number of routes. The budgets given are per greedy step
(`AcquisitionSettings.per_step`), and a line search gives up after `LINE_SEARCH_STEPS` evaluations.

Pools: score every remaining row, take the best, add it to `X_pending`, repeat (as
`optimize_acqf_discrete`, returning row indices).
"""

from __future__ import annotations

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.generation.gen import gen_candidates_scipy
from botorch.optim.initializers import initialize_q_batch

from agents.bayesian.expected_warnings import expected_warnings
from agents.space_base import Space

LOCAL_SIGMAS = (0.02, 0.05, 0.1, 0.2)
"""Standard deviations (feature-cube units) of the raw designs drawn around the best observed designs, one
drawn per design. Where the acquisition's high ground is a small region near the incumbent (late in a
campaign, nine dimensions), uniform raw designs seldom land on it and L-BFGS-B from the best of them ends
on a lower peak: on 20 states of recorded campaigns, 1 024 raw designs half of them local came within 0.1
of the acquisition value of 16 384 uniform ones in 18, and beat it by 0.5–3.4 (log units) in 4
(docs/benchmarks.md). Clamping puts designs exactly on the bounds, where several of a recipe's optima lie."""

LOCAL_OTHER_CATEGORY = 0.5
"""Share of the local raw designs whose category (a recipe's route) is drawn anew, uniformly: the best
recipe so far, tried on another route."""

LINE_SEARCH_STEPS = 8
"""Evaluations one L-BFGS-B line search may spend (scipy's default is 20). Where the acquisition has a
kink (an input clamped at its bound, a route's inactive axis) a line search can fail repeatedly, and one
start then took 97–165 evaluations against 16–32 for the others. Measured at 200 observations, q = 4,
8 seeds: the same batches (mean joint log-acquisition −2.325 against −2.323 with 20) in 0.65 of the
time; 4 steps lost quality (−2.60)."""


def _starts(raw: torch.Tensor, values: torch.Tensor, n: int, cat_columns: tuple[int, ...]) -> torch.Tensor:
    """n starting points (n, 1, d): the best raw design of every category, then Boltzmann-weighted picks."""
    chosen: list[int] = []
    if cat_columns:
        category = raw[:, 0, list(cat_columns)].argmax(dim=-1)
        for c in range(len(cat_columns)):
            members = torch.nonzero(category == c).flatten()
            if len(members):
                chosen.append(int(members[values[members].argmax()]))
    rest = torch.tensor([i for i in range(len(raw)) if i not in set(chosen)], dtype=torch.long)
    n_more = max(n - len(chosen), 0)
    if n_more and len(rest):
        more, _ = initialize_q_batch(raw[rest], values[rest], n=min(n_more, len(rest)))
        return torch.cat([raw[chosen], more]) if chosen else more
    return raw[chosen]


def raw_designs(
    space: Space,
    n: int,
    generator: torch.Generator,
    centres: torch.Tensor | None = None,
    local_share: float = 0.0,
) -> torch.Tensor:
    """n designs (n, 1, n_features): ⌊n · local_share⌋ around `centres` (k, n_features), the rest uniform."""
    U = torch.rand(n, space.unit_dim, generator=generator, dtype=torch.float64)
    raw = torch.as_tensor(space.unit_to_features(U.numpy()), dtype=torch.float64)
    n_local = int(n * local_share) if centres is not None and len(centres) else 0
    if n_local:
        which = torch.randint(len(centres), (n_local,), generator=generator)
        sigma = torch.tensor(LOCAL_SIGMAS, dtype=torch.float64)[
            torch.randint(len(LOCAL_SIGMAS), (n_local,), generator=generator)
        ]
        X = centres[which].to(torch.float64).clone()
        k = X.shape[-1] - len(space.cat_columns)  # the continuous columns; the categorical one-hot follows
        noise = torch.randn(n_local, k, generator=generator, dtype=torch.float64)
        X[:, :k] = (X[:, :k] + sigma[:, None] * noise).clamp(0.0, 1.0)
        if space.cat_columns:
            redraw = torch.rand(n_local, generator=generator, dtype=torch.float64) < LOCAL_OTHER_CATEGORY
            category = torch.randint(len(space.cat_columns), (n_local,), generator=generator)
            onehot = torch.nn.functional.one_hot(category, len(space.cat_columns)).to(X)
            X[redraw, k:] = onehot[redraw]
        raw[:n_local] = space.project(X)
    return raw.unsqueeze(1)


def optimize_sequential(
    acq: AcquisitionFunction,
    space: Space,
    q: int,
    *,
    raw_samples: int,
    num_restarts: int,
    maxiter: int,
    generator: torch.Generator,
    centres: torch.Tensor | None = None,
    local_share: float = 0.0,
) -> torch.Tensor:
    """q designs (q, n_features), chosen greedily; `acq.X_pending` is restored afterwards.

    `centres` (k, n_features): designs around which `local_share` of each step's raw designs are drawn.
    """
    base_pending = acq.X_pending
    chosen: list[torch.Tensor] = []

    def projected(X: torch.Tensor) -> torch.Tensor:
        return acq(space.project(X))

    try:
        for _ in range(q):
            raw = raw_designs(space, raw_samples, generator, centres, local_share)
            with torch.no_grad():
                values = acq(raw)
            starts = _starts(raw, values, num_restarts, space.cat_columns)
            fixed = {c: starts[:, 0, c].clone() for c in space.cat_columns} or None
            with expected_warnings():
                cand, cand_values = gen_candidates_scipy(
                    starts,
                    projected,  # type: ignore[arg-type]
                    lower_bounds=0.0,
                    upper_bounds=1.0,
                    options={"maxiter": maxiter, "maxls": LINE_SEARCH_STEPS},
                    fixed_features=fixed,
                )
            best = space.project(cand[int(cand_values.argmax())]).detach()
            chosen.append(best)
            pending = torch.cat([base_pending, *chosen]) if base_pending is not None else torch.cat(chosen)
            acq.set_X_pending(pending)
    finally:
        acq.set_X_pending(base_pending)
    return torch.cat(chosen)


def optimize_pool(acq: AcquisitionFunction, choices: torch.Tensor, q: int, *, batch: int) -> list[int]:
    """Indices of up to q rows of `choices` (n, d), chosen greedily; `acq.X_pending` is restored afterwards."""
    base_pending = acq.X_pending
    available = list(range(len(choices)))
    picked: list[int] = []
    try:
        for _ in range(min(q, len(choices))):
            rows = choices[available].unsqueeze(1)
            with torch.no_grad():
                values = torch.cat([acq(rows[i : i + batch]) for i in range(0, len(rows), batch)])
            picked.append(available.pop(int(values.argmax())))
            new = choices[picked]
            acq.set_X_pending(torch.cat([base_pending, new]) if base_pending is not None else new)
    finally:
        acq.set_X_pending(base_pending)
    return picked
