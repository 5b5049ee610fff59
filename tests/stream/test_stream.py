"""The document stream with real sockets: RunEngine → Publisher → proxy process → RemoteDispatcher.

Loopback only; every wait bounded; processes and threads stopped in teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from controller.stream.codec import pack, unpack
from controller.stream.proxy import start_proxy_process
from controller.stream.publisher import make_publisher
from controller.stream.subscriber import make_dispatcher
from tests.manager.test_worker_and_watchdog import free_port, wait_for


def test_codec_round_trips_numpy_and_refuses_objects() -> None:
    doc = {"data": {"a": np.float32(1.5), "img": np.arange(6, dtype=np.uint16).reshape(2, 3)}, "seq_num": 1}
    back = unpack(pack(doc))
    assert back["data"]["a"] == 1.5 and back["seq_num"] == 1
    np.testing.assert_array_equal(back["data"]["img"], doc["data"]["img"])
    with pytest.raises(TypeError):
        pack({"x": object()})


class Receiver:
    """A RemoteDispatcher running in a thread, collecting (name, doc)."""

    def __init__(self, address: str, **curve: Path) -> None:
        self.docs: list[tuple[str, dict]] = []
        self.dispatcher = make_dispatcher(address, **curve)
        self.dispatcher.subscribe(lambda name, doc: self.docs.append((name, doc)))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):  # stop() cancels the polling task
            self.dispatcher.start()

    def stop(self) -> None:
        self.dispatcher.loop.call_soon_threadsafe(self.dispatcher.stop)
        self.thread.join(5)


def complete_runs(docs: list[tuple[str, dict]]) -> list[tuple[int, int]]:
    """(start index, stop index) of every run received from its start to its stop (a late join misses starts)."""
    starts = {doc["uid"]: i for i, (name, doc) in enumerate(docs) if name == "start"}
    return [(starts[d["run_start"]], i) for i, (n, d) in enumerate(docs) if n == "stop" and d["run_start"] in starts]


def run_until_received(RE: RunEngine, receiver: Receiver, timeout_s: float = 20) -> None:
    """Publish `count` runs until the subscriber has seen one whole (PUB/SUB drops what it sends before joining)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        RE(count([det], num=3))
        time.sleep(0.2)
        if complete_runs(receiver.docs):
            return
    raise AssertionError("no complete run arrived")


def test_run_engine_to_remote_dispatcher(proxy: tuple[str, str]) -> None:
    in_address, out_address = proxy
    receiver = Receiver(out_address)
    RE = RunEngine({}, context_managers=[])
    publisher = make_publisher(in_address)
    RE.subscribe(publisher)
    try:
        run_until_received(RE, receiver)
        start_index, stop_index = complete_runs(receiver.docs)[0]
        names = [n for n, _ in receiver.docs[start_index : stop_index + 1]]
        assert names == ["start", "descriptor", "event", "event", "event", "stop"]
        event = receiver.docs[start_index + 2][1]
        assert isinstance(event["data"]["det"], float)
    finally:
        receiver.stop()
        publisher.close()


def test_curve_lets_only_allow_listed_clients_in(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    (keys / "clients").mkdir(parents=True)
    zmq.auth.create_certificates(keys, "server")
    allowed_dir, stranger_dir = tmp_path / "allowed", tmp_path / "stranger"
    for d in (allowed_dir, stranger_dir):
        d.mkdir()
        zmq.auth.create_certificates(d, "client")
    (keys / "clients" / "client.key").write_bytes((allowed_dir / "client.key").read_bytes())
    in_address, out_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    proc = start_proxy_process(in_address, out_address, keys=keys)
    server_public = keys / "server.key"
    allowed = Receiver(out_address, client_secret=allowed_dir / "client.key_secret", server_public=server_public)
    stranger = Receiver(out_address, client_secret=stranger_dir / "client.key_secret", server_public=server_public)
    RE = RunEngine({}, context_managers=[])
    publisher = make_publisher(in_address)
    RE.subscribe(publisher)
    try:
        run_until_received(RE, allowed)
        RE(count([det], num=1))
        wait_for(lambda: sum(n == "stop" for n, _ in allowed.docs) >= 2, 10, "a second run")
        assert stranger.docs == []
    finally:
        allowed.stop()
        stranger.stop()
        publisher.close()
        proc.terminate()
        proc.wait(10)


def test_proxy_that_cannot_bind_is_a_clear_error() -> None:
    address = f"127.0.0.1:{free_port()}"
    first = start_proxy_process(address, f"127.0.0.1:{free_port()}")
    try:
        with pytest.raises(RuntimeError, match="proxy did not start"):
            start_proxy_process(address, f"127.0.0.1:{free_port()}", timeout_s=10)
    finally:
        first.terminate()
        first.wait(10)
