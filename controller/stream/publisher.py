"""Publish a RunEngine's documents to the 0MQ proxy: `RE.subscribe(make_publisher("127.0.0.1:5577"))`."""

from __future__ import annotations

import zmq
from bluesky.callbacks.zmq import Publisher

from controller.stream.codec import pack

PREFIX = b"grainloop"
LINGER_MS = 1000  # how long closing waits to flush unsent documents; bluesky leaves it infinite


def make_publisher(address: str | tuple[str, int], prefix: bytes = PREFIX) -> Publisher:
    """bluesky's Publisher (PUB, connects to the proxy's input) serialising with msgpack.

    Its socket lingers at most LINGER_MS: with bluesky's default (forever) a publisher whose proxy has
    gone blocks the process at exit, when garbage collection terminates the 0MQ context.
    """
    publisher = Publisher(address, prefix=prefix, serializer=pack)
    publisher._socket.setsockopt(zmq.LINGER, LINGER_MS)  # bluesky exposes no option for it
    return publisher
