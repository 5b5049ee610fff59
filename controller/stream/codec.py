"""msgpack for documents on the wire — never pickle, which would let a publisher run code in every subscriber.

numpy scalars and arrays in event data survive the round trip (msgpack-numpy's extension types);
anything else that is not plain data is refused on the publishing side with a TypeError.
"""

from __future__ import annotations

from typing import Any

import msgpack
import msgpack_numpy


def pack(doc: Any) -> bytes:
    return msgpack.packb(doc, default=msgpack_numpy.encode, use_bin_type=True)


def unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, object_hook=msgpack_numpy.decode, raw=False, strict_map_key=False)
