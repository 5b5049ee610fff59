"""The plan queue and history in queueserver's vocabulary: items, positions, change tokens.

Items are dicts `{"item_type": "plan", "name", "args", "kwargs", "item_uid", "user", "user_group",
"meta"}`; the queue is ordered, the history append-only (until cleared). Each change draws a new
`plan_queue_uid` / `plan_history_uid`, which clients (bluesky-queueserver-api) compare to reload only
what changed. Persistence goes through `QueueStore`, so a restarted manager finds its queue.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Mapping
from typing import Any, Protocol


class QueueError(ValueError):
    """A queue operation that cannot be done as asked (unknown uid, position out of range, …)."""


class QueueStore(Protocol):
    def load_queue(self) -> list[dict[str, Any]]: ...
    def save_queue(self, items: list[dict[str, Any]]) -> None: ...
    def load_history(self) -> list[dict[str, Any]]: ...
    def append_history(self, entry: dict[str, Any]) -> None: ...
    def clear_history(self) -> None: ...


class MemoryQueueStore:
    """For tests and throw-away managers."""

    def __init__(self) -> None:
        self.queue: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []

    def load_queue(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.queue)

    def save_queue(self, items: list[dict[str, Any]]) -> None:
        self.queue = copy.deepcopy(items)

    def load_history(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.history)

    def append_history(self, entry: dict[str, Any]) -> None:
        self.history.append(copy.deepcopy(entry))

    def clear_history(self) -> None:
        self.history.clear()


def new_uid() -> str:
    return str(uuid.uuid4())


class PlanQueue:
    """Ordered items plus history; thread-safe; every mutation persists and renews the change token."""

    def __init__(self, store: QueueStore) -> None:
        self.store = store
        self.lock = threading.RLock()
        self.items = store.load_queue()
        self.history = store.load_history()
        self.queue_uid, self.history_uid = new_uid(), new_uid()

    def _changed(self) -> None:
        self.store.save_queue(self.items)
        self.queue_uid = new_uid()

    def get(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.items)

    def index_of(self, uid: str) -> int:
        for i, item in enumerate(self.items):
            if item["item_uid"] == uid:
                return i
        raise QueueError(f"item with uid {uid!r} is not in the queue")

    def _position(self, pos: int | str | None, before_uid: str | None, after_uid: str | None, n: int) -> int:
        given = [x is not None for x in (pos, before_uid, after_uid)]
        if sum(given) > 1:
            raise QueueError("give at most one of pos, before_uid, after_uid")
        if before_uid is not None:
            return self.index_of(before_uid)
        if after_uid is not None:
            return self.index_of(after_uid) + 1
        if pos is None or pos == "back":
            return n
        if pos == "front":
            return 0
        if isinstance(pos, bool) or not isinstance(pos, int):
            raise QueueError(f"pos must be an integer, 'front' or 'back', got {pos!r}")
        index = pos if pos >= 0 else n + 1 + pos
        return min(max(index, 0), n)

    def add(
        self,
        item: Mapping[str, Any],
        pos: int | str | None = None,
        before_uid: str | None = None,
        after_uid: str | None = None,
    ) -> tuple[dict[str, Any], int]:
        """Insert a copy of `item` with a fresh `item_uid`; returns it and its index."""
        with self.lock:
            new = {**copy.deepcopy(dict(item)), "item_uid": new_uid()}
            index = self._position(pos, before_uid, after_uid, len(self.items))
            self.items.insert(index, new)
            self._changed()
            return copy.deepcopy(new), index

    def _find(self, pos: int | str | None, uid: str | None) -> int:
        if uid is not None:
            return self.index_of(uid)
        if not self.items:
            raise QueueError("the queue is empty")
        if pos is None or pos == "back":
            return len(self.items) - 1
        if pos == "front":
            return 0
        if isinstance(pos, bool) or not isinstance(pos, int) or not -len(self.items) <= pos < len(self.items):
            raise QueueError(f"position {pos!r} is outside the queue (length {len(self.items)})")
        return pos % len(self.items)

    def get_item(self, pos: int | str | None = None, uid: str | None = None) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.items[self._find(pos, uid)])

    def remove(self, pos: int | str | None = None, uid: str | None = None) -> dict[str, Any]:
        with self.lock:
            item = self.items.pop(self._find(pos, uid))
            self._changed()
            return item

    def update(self, item: Mapping[str, Any], replace: bool = False) -> dict[str, Any]:
        """Edit a queued item in place (same uid) or replace it (new uid)."""
        with self.lock:
            index = self.index_of(item["item_uid"])
            new = copy.deepcopy(dict(item))
            if replace:
                new["item_uid"] = new_uid()
            self.items[index] = new
            self._changed()
            return copy.deepcopy(new)

    def move(
        self,
        pos: int | str | None = None,
        uid: str | None = None,
        pos_dest: int | str | None = None,
        before_uid: str | None = None,
        after_uid: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            src = self._find(pos, uid)
            whole = self.items
            self.items = whole[:src] + whole[src + 1 :]  # destinations are relative to the queue without it
            try:
                index = self._position(pos_dest, before_uid, after_uid, len(self.items))
            finally:
                self.items = whole
            item = self.items.pop(src)
            self.items.insert(index, item)
            self._changed()
            return copy.deepcopy(item)

    def pop_front(self) -> dict[str, Any] | None:
        with self.lock:
            if not self.items:
                return None
            item = self.items.pop(0)
            self._changed()
            return item

    def push_front(self, item: dict[str, Any]) -> None:
        with self.lock:
            self.items.insert(0, item)
            self._changed()

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self._changed()

    # -- history -----------------------------------------------------------------------------------
    def record(self, item: dict[str, Any], result: dict[str, Any]) -> bool:
        """Append a finished item to the history, once per item_uid; False if it was already there."""
        with self.lock:
            if any(h["item_uid"] == item["item_uid"] for h in self.history[-200:]):
                return False
            entry = {**copy.deepcopy(item), "result": copy.deepcopy(result)}
            self.history.append(entry)
            self.store.append_history(entry)
            self.history_uid = new_uid()
            return True

    def get_history(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.history)

    def clear_history(self) -> None:
        with self.lock:
            self.history.clear()
            self.store.clear_history()
            self.history_uid = new_uid()
