"""Fixtures shared by test packages: a real embedded Tiled server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store.embedded import EmbeddedTiled


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedTiled]:
    """An embedded Tiled server serving `tmp_path / "data"`, closed after the test."""
    server = EmbeddedTiled(tmp_path / "tiled", 0, [tmp_path / "data"])
    server.start()
    try:
        yield server
    finally:
        server.close()
