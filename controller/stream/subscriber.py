"""Receive documents from the proxy in another process: `make_dispatcher(address).subscribe(callback)`.

PUB/SUB drops messages when a subscriber is slow or joins late, so treat the stream as a notification
and read what matters from the run store.
"""

from __future__ import annotations

from pathlib import Path

from bluesky.callbacks.zmq import ClientCurve, RemoteDispatcher

from controller.stream.codec import unpack
from controller.stream.publisher import PREFIX


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
