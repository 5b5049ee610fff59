"""What a campaign has found so far, from its journal rows (no agent, no lab: cheap to import)."""

from __future__ import annotations

from pathlib import Path

from controller.campaign.journal import StepRow

OBJECTIVE = "trapped_field_t"


def campaign_dir(data_dir: Path, campaign_id: str) -> Path:
    return Path(data_dir) / "campaigns" / campaign_id


def best_so_far(rows: list[StepRow], min_tc_k: float | None) -> tuple[float | None, StepRow | None]:
    """The best trapped field among successful steps that meet the Tc constraint."""
    best, best_row = None, None
    for row in rows:
        if row.status != "done" or not row.result:
            continue
        if min_tc_k is not None and row.result.get("tc_k", 0.0) < min_tc_k:
            continue
        value = row.result.get(OBJECTIVE)
        if value is not None and (best is None or value > best):
            best, best_row = value, row
    return best, best_row
