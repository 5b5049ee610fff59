"""Service settings: TOML file under environment variables, one clear line for anything wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.service.config import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_the_example_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRAINLOOP_DATA_DIR", "GRAINLOOP_API_PORT", "GRAINLOOP_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings(REPO / "deploy" / "grainloop.toml")
    assert s.api_port == 8600 and s.bind_host == "127.0.0.1"
    assert s.resolved_state_url.startswith("sqlite:///") and s.resolved_state_url.endswith(
        "grainloop-data/state.sqlite"
    )


def test_environment_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text('api_port = 9000\nworker_port = 9002\ndata_dir = "from-file"\n')
    monkeypatch.setenv("GRAINLOOP_API_PORT", "9100")
    monkeypatch.setenv("GRAINLOOP_DATA_DIR", str(tmp_path / "env"))
    s = load_settings(cfg)
    assert (s.api_port, s.worker_port, s.data_dir) == (9100, 9002, tmp_path / "env")
    monkeypatch.setenv("GRAINLOOP_CONFIG", str(cfg))
    assert load_settings().worker_port == 9002


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api_port = 70000\n", "invalid setting api_port in .*: Value error, a port is 1–65535"),
        ("colour = 'blue'\n", "invalid setting colour in .*: Extra inputs are not permitted"),
        ("api_port = \n", "not valid TOML"),
        ("agents = ['tarot']\n", "unknown agent"),
        ("api_port = 9000\nworker_port = 9000\n", "api_port and worker_port are both 9000"),
    ],
)
def test_bad_settings_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str) -> None:
    monkeypatch.delenv("GRAINLOOP_API_PORT", raising=False)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=message) as info:
        load_settings(cfg)
    assert "\n" not in str(info.value)
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.toml")
