"""The plan queue: positions, moves, change tokens, history de-duplication, persistence through a store."""

from __future__ import annotations

import pytest

from controller.manager.queue import MemoryQueueStore, PlanQueue, QueueError


def plan(name: str) -> dict:
    return {"item_type": "plan", "name": "hold", "kwargs": {"duration_s": 1}, "meta": {"tag": name}}


def tags(queue: PlanQueue) -> list[str]:
    return [item["meta"]["tag"] for item in queue.get()]


def test_positions_and_uids() -> None:
    q = PlanQueue(MemoryQueueStore())
    a, _ = q.add(plan("a"))
    b, _ = q.add(plan("b"), pos="front")
    c, index = q.add(plan("c"), after_uid=b["item_uid"])
    q.add(plan("d"), before_uid=a["item_uid"])
    q.add(plan("e"), pos=-1)  # -1 is the back, as in queueserver
    assert index == 1
    assert tags(q) == ["b", "c", "d", "a", "e"]
    assert len({i["item_uid"] for i in q.get()}) == 5
    assert q.get_item(pos=0)["meta"]["tag"] == "b"
    assert q.get_item(pos="back")["meta"]["tag"] == "e"
    assert q.get_item(uid=c["item_uid"])["meta"]["tag"] == "c"


def test_bad_references_are_refused_without_change() -> None:
    q = PlanQueue(MemoryQueueStore())
    q.add(plan("a"))
    token = q.queue_uid
    with pytest.raises(QueueError, match="not in the queue"):
        q.add(plan("x"), before_uid="nope")
    with pytest.raises(QueueError, match="at most one"):
        q.add(plan("x"), pos=0, after_uid="nope")
    with pytest.raises(QueueError, match="outside the queue"):
        q.remove(pos=5)
    with pytest.raises(QueueError, match="pos must be"):
        q.move(pos=0, pos_dest="middle")
    assert tags(q) == ["a"] and q.queue_uid == token


def test_move_and_update_renew_the_token() -> None:
    q = PlanQueue(MemoryQueueStore())
    items = [q.add(plan(t))[0] for t in "abcd"]
    token = q.queue_uid
    q.move(uid=items[3]["item_uid"], pos_dest="front")
    assert tags(q) == ["d", "a", "b", "c"] and q.queue_uid != token
    q.move(pos=0, after_uid=items[2]["item_uid"])
    assert tags(q) == ["a", "b", "c", "d"]
    edited = {**items[1], "meta": {"tag": "B"}}
    assert q.update(edited)["item_uid"] == items[1]["item_uid"]
    assert q.update({**edited, "meta": {"tag": "BB"}}, replace=True)["item_uid"] != items[1]["item_uid"]
    assert tags(q) == ["a", "BB", "c", "d"]


def test_history_once_per_item_and_persisted() -> None:
    store = MemoryQueueStore()
    q = PlanQueue(store)
    item, _ = q.add(plan("a"))
    popped = q.pop_front()
    assert popped == item and q.get() == []
    token = q.history_uid
    assert q.record(popped, {"exit_status": "completed"})
    assert not q.record(popped, {"exit_status": "completed"})  # a result seen twice counts once
    assert q.history_uid != token
    q.add(plan("b"))
    again = PlanQueue(store)  # a restarted manager finds queue and history
    assert tags(again) == ["b"]
    assert [h["result"]["exit_status"] for h in again.get_history()] == ["completed"]
