"""Loopback ports for the services a test or the demo starts: free, outside the ephemeral range, unique."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from controller.service import ports
from controller.service.ports import ephemeral_low, free_loopback_port, ports_in_use


def test_ports_are_free_below_the_ephemeral_range_and_never_repeat() -> None:
    got = [free_loopback_port() for _ in range(50)]
    assert len(set(got)) == 50
    assert all(ports.LOWEST_PORT <= p < ephemeral_low() for p in got)
    with socket.socket() as s:
        s.bind(("127.0.0.1", got[0]))  # free when handed out


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        draws = iter([busy, busy + 1])
        monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", Path("/nonexistent"))
        monkeypatch.setattr(ports, "DEFAULT_EPHEMERAL_LOW", 65_000)
        monkeypatch.setattr(ports.random, "randrange", lambda lo, hi: next(draws))
        monkeypatch.setattr(ports, "_handed_out", set())
        assert free_loopback_port() != busy


def test_an_unreadable_range_falls_back_to_the_usual_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", Path("/nonexistent"))
    assert ephemeral_low() == ports.DEFAULT_EPHEMERAL_LOW


def test_ports_in_use_names_a_listening_port_and_passes_a_free_one() -> None:
    free = free_loopback_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        assert ports_in_use("127.0.0.1", {"api_port": taken, "worker_port": free}) == ["api_port"]


def test_serve_refuses_a_taken_port_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.cli import main

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        monkeypatch.delenv("GRAINLOOP_CONFIG", raising=False)
        monkeypatch.setenv("GRAINLOOP_DATA_DIR", str(tmp_path))
        for name in ("API", "TILED", "ZMQ_IN", "ZMQ_OUT"):
            monkeypatch.setenv(f"GRAINLOOP_{name}_PORT", str(free_loopback_port()))
        monkeypatch.setenv("GRAINLOOP_WORKER_PORT", str(taken))
        assert main(["serve"]) == 2
    assert not (tmp_path / "worker").exists()  # nothing was started
