"""The journal: idempotent on (campaign_id, step), atomic with the agent's checkpoint, WAL on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from controller.campaign.config import CampaignConfig
from controller.campaign.journal import Journal, StepRow, sqlite_url

RECIPE = {
    "mill_rpm": 600.0,
    "milling_time_h": 2.0,
    "ball_to_powder_ratio": 10.0,
    "k_excess": 0.03,
    "route": "hip",
    "dwell_temperature_c": 600.0,
    "dwell_time_h": 10.0,
    "pressure_mpa": 190.0,
    "ramp_rate_c_per_min": 5.0,
}


def row(step: int) -> StepRow:
    return StepRow("C1", step, f"s{step}", f"C1-{step:04d}", RECIPE, "proposed", None, "agent")


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(sqlite_url(tmp_path / "j.db"))
    j.create_campaign("C1", {"agent": "random"})
    return j


def test_sqlite_runs_in_wal_mode_with_full_sync(journal: Journal) -> None:
    with journal.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_proposing_twice_and_finishing_twice_change_nothing(journal: Journal) -> None:
    journal.propose("C1", [row(0), row(1)], {"n": 1})
    journal.propose("C1", [row(0)], {"n": 2})
    assert [r.step for r in journal.steps("C1")] == [0, 1]
    journal.mark_running("C1", 0)
    assert journal.finish("C1", 0, failed=False, result={"trapped_field_t": 1.0}, agent_state={"n": 3})
    assert not journal.finish("C1", 0, failed=True, result={"reason": "late"}, agent_state={"n": 4})
    steps = journal.steps("C1")
    assert steps[0].status == "done" and steps[0].result == {"trapped_field_t": 1.0}
    assert journal.campaign("C1")["agent_state"] == {"n": 3}
    journal.mark_running("C1", 0)  # a finished step never goes back to running
    assert journal.steps("C1")[0].status == "done"


def test_a_campaign_id_is_unique_and_unknown_ids_are_clear_errors(journal: Journal) -> None:
    with pytest.raises(ValueError, match="already exists"):
        journal.create_campaign("C1", {})
    with pytest.raises(KeyError, match="no campaign"):
        journal.campaign("nope")


def test_an_agent_state_that_is_not_json_is_refused_before_anything_is_written(journal: Journal) -> None:
    with pytest.raises(TypeError):
        journal.propose("C1", [row(0)], {"bad": object()})
    assert journal.steps("C1") == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fixed": {"colour": 1}}, "unknown field in fixed"),
        ({"fixed": {"pressure_mpa": 150}}, "for route tube"),
        ({"fixed": {"route": "microwave"}}, "unknown route"),
        ({"fixed": {"mill_rpm": 5000}}, "outside"),
        ({"budget_experiments": 0}, "budget_experiments"),
        ({"batch": 0}, "batch"),
        ({"agent": "oracle"}, "agent"),
    ],
)
def test_bad_campaign_configurations_are_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        CampaignConfig(**kwargs)
