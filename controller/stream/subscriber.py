"""Receive documents from the proxy in another process: `make_dispatcher(address).subscribe(callback)`.

PUB/SUB drops messages when a subscriber is slow or joins late, so treat the stream as a notification
and read what matters from the run store (`controller.stream.gaps.GapFiller` does, between the
dispatcher and a consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from bluesky.callbacks.zmq import ClientCurve, RemoteDispatcher

from controller.stream.codec import unpack
from controller.stream.publisher import PREFIX

log = logging.getLogger("grainloop.stream")


def make_dispatcher(
    address: str | tuple[str, int],
    prefix: bytes = PREFIX,
    client_secret: Path | None = None,
    server_public: Path | None = None,
) -> RemoteDispatcher:
    """bluesky's RemoteDispatcher with the msgpack deserializer; CURVE if both key files are given."""
    curve = None
    if client_secret is not None or server_public is not None:
        if client_secret is None or server_public is None:
            raise ValueError("CURVE needs both the client's secret key file and the server's public key file")
        curve = ClientCurve(secret_path=Path(client_secret), server_public_key=Path(server_public))
    return RemoteDispatcher(address, prefix=prefix, deserializer=unpack, curve_config=curve)


def run_until_stopped(dispatcher: RemoteDispatcher) -> None:
    """`dispatcher.start()` in this thread until `request_stop` (a cancelled poll is a normal end)."""
    with contextlib.suppress(asyncio.CancelledError):
        dispatcher.start()


def request_stop(dispatcher: RemoteDispatcher) -> None:
    """End `run_until_stopped` from any thread or a signal handler (wakes the dispatcher's loop)."""
    if not dispatcher.loop.is_closed():
        dispatcher.loop.call_soon_threadsafe(_cancel_poll, dispatcher)


def _cancel_poll(dispatcher: RemoteDispatcher) -> None:
    if dispatcher._task is not None:  # bluesky keeps the polling task private
        dispatcher._task.cancel()


def call_every(dispatcher: RemoteDispatcher, interval_s: float, fn: Callable[[], object]) -> None:
    """Call `fn()` every `interval_s` on the dispatcher's own thread (between documents) while it runs."""

    def tick() -> None:
        try:
            fn()
        except Exception:
            log.exception("periodic %r failed", fn)
        if not dispatcher.loop.is_closed():
            dispatcher.loop.call_later(interval_s, tick)

    dispatcher.loop.call_later(interval_s, tick)
