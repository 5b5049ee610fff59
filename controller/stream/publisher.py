"""Publish a RunEngine's documents to the 0MQ proxy: `RE.subscribe(make_publisher("127.0.0.1:5577"))`."""

from __future__ import annotations

from bluesky.callbacks.zmq import Publisher

from controller.stream.codec import pack

PREFIX = b"grainloop"


def make_publisher(address: str | tuple[str, int], prefix: bytes = PREFIX) -> Publisher:
    """bluesky's Publisher (PUB, connects to the proxy's input) serialising with msgpack."""
    return Publisher(address, prefix=prefix, serializer=pack)
