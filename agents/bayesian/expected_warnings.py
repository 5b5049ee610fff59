"""Warnings that are part of normal operation in a campaign, silenced where they arise; others pass through.

- `OptimizationWarning`: L-BFGS-B stopped at its iteration cap or on a line-search end; the result is
  used as it is (botorch forces these to "always", so a plain filter cannot hide them).
- `InputDataWarning`: a constant outcome (a constraint every design meets) is not "standardised".
- `NumericalWarning`: a few 1e-8 of jitter on the diagonal of a near-singular covariance (replicates).
- `BotorchWarning` "all training points are infeasible": early in a campaign nothing may meet the
  constraints yet; qLogNEI then improves on the least infeasible baseline, which is what we want.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from botorch.exceptions.warnings import BotorchWarning, InputDataWarning, OptimizationWarning
from linear_operator.utils.warnings import NumericalWarning

EXPECTED: tuple[type[Warning], ...] = (OptimizationWarning, InputDataWarning, NumericalWarning)


def _expected(w: warnings.WarningMessage) -> bool:
    if issubclass(w.category, EXPECTED):
        return True
    return issubclass(w.category, BotorchWarning) and "all training points are infeasible" in str(w.message)


@contextmanager
def expected_warnings() -> Iterator[None]:
    """Swallow the expected warnings raised inside; re-issue every other one."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if not _expected(w):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
