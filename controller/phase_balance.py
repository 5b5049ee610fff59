"""What the XRD's phase fractions say about a sample's K balance, as one outcome an agent can read.

FeAs and KFe2As2 are the K-off-stoichiometry phases (science.md): FeAs forms where the powder holds too
little K for the 122 phase, KFe2As2 where it holds too much. Their difference, as the XRD reads them, is a
signed measure of the K balance: a chemist who sees FeAs and no KFe2As2 weighs in more K next time.
"""

from __future__ import annotations

from collections.abc import Mapping

K_BALANCE_KEY = "k_balance_wt_pct"
"""The outcome's name beside the property station's readings."""
K_RICH_PHASE, K_POOR_PHASE = "KFe2As2", "FeAs"


def k_balance_wt_pct(phase_fractions_wt_pct: Mapping[str, float]) -> float:
    """KFe2As2 − FeAs as the XRD reported them (a phase below its detection limit counts 0), in wt%.

    Positive: more K than the 122 phase takes; negative: too little; 0 where neither phase was detected.
    """
    return float(phase_fractions_wt_pct.get(K_RICH_PHASE, 0.0) - phase_fractions_wt_pct.get(K_POOR_PHASE, 0.0))
