"""The embedded Tiled server: a SQLite catalog and storage under one directory, served on loopback.

It runs in the API process (tiled's app in a uvicorn thread; tables in SQLite) and reads the instruments'
HDF5 files where the worker wrote them (`readable`). Its API key is `settings.tiled_api_key` or a random
key kept in `DIR/api_key` (mode 0600), the same across restarts, so that users and agents can read runs:

    from tiled.client import from_uri
    client = from_uri("http://127.0.0.1:8601/api/v1", api_key=open("grainloop-data/tiled/api_key").read())
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("grainloop.store")


def store_api_key(directory: Path, given: str | None = None) -> str:
    """`given`, else the key kept in `directory/api_key`, else a new one written there (0600)."""
    if given:
        return given
    path = directory / "api_key"
    if path.exists():
        return path.read_text().strip()
    directory.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


class SerializedWrites:
    """ASGI wrapper: requests that change the store run one at a time; reads go through at once."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock: asyncio.Lock | None = None  # made on the server's own event loop

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class EmbeddedTiled:
    """A Tiled server on `directory`, started by `start()`, stopped by `close()` (idempotent; do call it:
    the server thread is not a daemon)."""

    def __init__(self, directory: Path, port: int, readable: list[Path], api_key: str | None = None) -> None:
        self.directory, self.port, self.readable = directory, port, readable
        self.api_key = store_api_key(directory, api_key)
        self._server: Any = None
        self._context: Any = None

    @property
    def uri(self) -> str:
        """The API root that `tiled.client.from_uri` takes (without the key)."""
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> str:
        """Serve; returns the API root once the server answers (TimeoutError after 20 s)."""
        import uvicorn  # heavy imports: only when a store is wanted
        from tiled.catalog import from_uri as catalog_from_uri
        from tiled.config import Authentication
        from tiled.server.app import build_app
        from tiled.server.simple import ThreadedServer

        for path in [self.directory / "data", *self.readable]:
            path.mkdir(parents=True, exist_ok=True)
        # Tables in SQLite (WAL, so reads do not wait for writes), writes one at a time: tiled's default
        # DuckDB shares one connection between the server's threads and overlapping appends fail ("No
        # active transaction"); plain SQLite refuses them ("database is locked"). Both measured in
        # tests/store with three writers at once.
        tables_path = (self.directory / "tables.sqlite").resolve()
        with contextlib.closing(sqlite3.connect(tables_path)) as db:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the file
        tables = f"sqlite:///{tables_path}"
        catalog = catalog_from_uri(
            self.directory / "catalog.db",
            writable_storage=[self.directory / "data", tables],
            readable_storage=self.readable,
            init_if_not_exists=True,
        )
        app = build_app(catalog, authentication=Authentication(single_user_api_key=self.api_key))
        config = uvicorn.Config(
            SerializedWrites(app), host="127.0.0.1", port=self.port, loop="asyncio", log_level="warning"
        )
        self._server = ThreadedServer(config)
        self._context = self._server.run_in_thread()
        base_url = self._context.__enter__()
        self.port = int(base_url.rsplit(":", 1)[1])  # port 0 asks for a free one
        self._wait_ready()
        log.info("Tiled run store on %s (catalog in %s)", self.uri, self.directory)
        return self.uri

    def _wait_ready(self, timeout_s: float = 20.0) -> None:
        """uvicorn listens before the app's startup has run: wait for /healthz."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(trust_env=False) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1.0).status_code == 200:
                        return
                time.sleep(0.1)
        self.close()
        raise TimeoutError(f"the Tiled server on port {self.port} did not become ready within {timeout_s:g} s")

    def close(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            context.__exit__(None, None, None)  # stops uvicorn and joins its thread
