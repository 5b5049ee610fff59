"""Fixtures of the stream tests: a real 0MQ proxy process on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.stream.proxy import start_proxy_process
from tests.manager.test_worker_and_watchdog import free_port


@pytest.fixture
def proxy() -> Iterator[tuple[str, str]]:
    """(input, output) addresses of a running proxy, stopped after the test."""
    addresses = (f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    proc = start_proxy_process(*addresses)
    try:
        yield addresses
    finally:
        proc.terminate()
        proc.wait(10)
