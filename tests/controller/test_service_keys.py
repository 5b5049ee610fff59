"""API keys: shown once, hashed at rest, revocable at once; roles and their order."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import main
from controller.service.keys import Role, authenticate, create_key, list_keys, revoke_key
from controller.service.state import open_state


def test_create_authenticate_revoke(tmp_path: Path) -> None:
    engine = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    key = create_key(engine, Role.operator, "alice")
    who = authenticate(engine, f"ApiKey {key}")
    assert who is not None and (who.name, who.role) == ("alice", Role.operator)
    assert authenticate(engine, f"ApiKey {key}x") is None  # wrong secret
    assert authenticate(engine, f"Bearer {key}") is None
    assert authenticate(engine, "ApiKey gl_nothing") is None and authenticate(engine, None) is None
    secret = key.split("_", 2)[2]
    assert secret.encode() not in (tmp_path / "state.sqlite").read_bytes()
    assert revoke_key(engine, who.key_id) and not revoke_key(engine, who.key_id)
    assert authenticate(engine, f"ApiKey {key}") is None  # the cached verification does not outlive revocation
    assert list_keys(engine)[0]["revoked_s"] is not None and "secret_hash" not in list_keys(engine)[0]


def test_roles() -> None:
    assert Role.admin.allows(Role.operator) and Role.operator.allows(Role.observer)
    assert not Role.observer.allows(Role.operator) and not Role.operator.allows(Role.admin)
    assert not Role.agent.allows(Role.observer) and not Role.admin.allows(Role.agent)
    assert Role.agent.allows(Role.agent)


def test_cli_prints_the_key_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRAINLOOP_DATA_DIR", str(tmp_path))
    assert main(["keys", "create", "--role", "agent", "--name", "bo"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert out == key + "\n" and key.startswith("gl_") and "agent" in err
    engine = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    assert authenticate(engine, f"ApiKey {key}").role == Role.agent
    assert main(["keys", "revoke", "000000000000"]) == 2
    assert "no active key" in capsys.readouterr().err
    monkeypatch.setenv("GRAINLOOP_API_PORT", "0")
    assert main(["keys", "list"]) == 2
