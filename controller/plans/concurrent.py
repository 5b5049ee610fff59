"""Several plans through one RunEngine at once: each gives way to the others only while it waits.

`concurrently({key: plan, ...})` yields the plans' messages to the RunEngine. A plan runs until it must
wait: for a group whose statuses are not all done, for a resource another plan holds (`acquire`,
`release`, `hold`: first come, first served), or to move a device declared `exclusive` that another
plan is still moving. Then the next plan that can go on runs; when none can, the RunEngine waits for
the first status to finish (`wait_for`). A plan is never switched out between `create` and `save`, so
its readings stay one event. Overlapping runs need a run key per plan (`bpp.set_run_key_wrapper`).

What the RunEngine does for one plan, this does for each of them:

- a failed status fails the plan that started it; the others go on. The result maps each key to the
  exception its plan ended with, or None. The RunEngine throws a status failure in place of the answer
  to whatever message it has just run, so what a `set`/`trigger` of another plan returned or raised
  meanwhile is taken from the device call itself (`_Call`): a refused move still fails its own plan;
- a pause or a suspension stops every device the RunEngine moved. On resuming, each plan that was in
  the middle of an action re-issues its `set`/`trigger`/`wait` messages since its own last checkpoint,
  as the RunEngine's rewind would re-issue one plan's. The RunEngine's own rewinding is switched off
  meanwhile: it knows one checkpoint, and another plan's checkpoint would cut a move short;
- an abort, a stop or a halt reaches every plan, so each closes its run and leaves its instrument safe.

A `sleep` or `wait_for` inside a plan still holds every plan up; these plans do not use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bluesky import preprocessors as bpp
from bluesky.utils import FailedPause, FailedStatus, Msg, RunEngineControlException

from controller.plans.stages import Plan

ACQUIRE, RELEASE = "grainloop_acquire", "grainloop_release"
"""Commands `concurrently` answers itself; the RunEngine never sees them."""

_ACTIONS = frozenset({"set", "trigger"})
_REWIND_POINTS = frozenset({"checkpoint", "monitor"})  # the RunEngine restarts its rewind cache at both
_ENGINE_INTERRUPTS: tuple[type[BaseException], ...] = (RunEngineControlException, FailedPause)


def acquire(resource: Hashable) -> Plan:
    """Wait until `resource` is free, then hold it (first come, first served). Only under `concurrently`."""
    yield Msg(ACQUIRE, None, resource)


def release(resource: Hashable) -> Plan:
    """Let the next plan have `resource`."""
    yield Msg(RELEASE, None, resource)


def hold(resource: Hashable, plan: Plan) -> Plan:
    """Run `plan` holding `resource`; it is released however `plan` ends."""
    yield from acquire(resource)
    return (yield from bpp.finalize_wrapper(plan, release(resource)))


class InterruptionCounter:
    """Counts pauses and suspensions: the RunEngine calls `pause()` on every object a plan has named."""

    def __init__(self) -> None:
        self.count = 0

    def pause(self) -> None:
        self.count += 1

    def resume(self) -> None:
        """Nothing to do: the plans re-issue their actions themselves."""


@dataclass(eq=False)
class _Lane:
    key: Hashable
    plan: Plan
    head: Msg | None = None  # yielded by the plan, not answered yet
    replay: deque[Msg] = field(default_factory=deque)  # actions to re-issue before `head`
    actions: list[Msg] = field(default_factory=list)  # set/trigger/wait since the last checkpoint
    groups: dict[Any, list[tuple[Any, Any]]] = field(default_factory=dict)  # group -> (device, status), not waited
    done: bool = False
    error: Exception | None = None

    def next_msg(self) -> Msg:
        assert self.head is not None
        return self.replay[0] if self.replay else self.head

    def in_action(self) -> bool:
        return any(self.groups.values())


def _group(msg: Msg) -> Any:
    return msg.args[0] if msg.command == "wait" and msg.args else msg.kwargs.get("group")


def _first_done(statuses: list[Any]) -> Callable[[], Awaitable[None]]:
    """An awaitable factory for `wait_for`: done when the first of `statuses` is."""

    async def _wait() -> None:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[None] = loop.create_future()

        def _done(_status: Any) -> None:
            loop.call_soon_threadsafe(lambda: first.done() or first.set_result(None))

        for status in statuses:
            status.add_callback(_done)
        await first

    return _wait


class _Call:
    """What the device call behind an action message did: the status it returned, or what it raised.

    The RunEngine answers a message only at the top of its loop, and a status failure that arrived
    meanwhile (another plan's) is thrown in instead of the answer: the new status, or the exception the
    device raised refusing the move, is dropped. While the RunEngine runs the message, `watching()` puts a
    recorder in front of `msg.obj.set` / `.trigger` (for calls from the RunEngine's thread) so the
    scheduler still knows. Where the method cannot be shadowed on the object (`watched` False), nothing
    is known, and the plan is failed rather than let go on as if its device had moved.
    """

    def __init__(self, msg: Msg) -> None:
        self.msg = msg
        self.watched = self.called = False
        self.result: Any = None
        self.error: Exception | None = None

    @contextlib.contextmanager
    def watching(self) -> Iterator[_Call]:
        obj, name = self.msg.obj, self.msg.command
        instance_attrs = getattr(obj, "__dict__", None)
        method = getattr(obj, name, None)
        if instance_attrs is None or not callable(method):
            yield self
            return
        shadowed = name in instance_attrs
        original = instance_attrs.get(name)
        thread = threading.get_ident()

        @functools.wraps(method)
        def _recorded(*args: Any, **kwargs: Any) -> Any:
            if self.called or threading.get_ident() != thread:
                return method(*args, **kwargs)
            self.called = True
            try:
                self.result = method(*args, **kwargs)
            except Exception as exc:
                self.error = exc
                raise
            return self.result

        try:
            setattr(obj, name, _recorded)
            self.watched = getattr(obj, name, None) is _recorded
        except (AttributeError, TypeError):
            self.watched = False
        try:
            yield self
        finally:
            with contextlib.suppress(AttributeError, TypeError):
                if shadowed:
                    setattr(obj, name, original)
                elif name in instance_attrs:
                    delattr(obj, name)

    def outcome(self) -> tuple[Any, Exception | None]:
        """(the answer, None) if the device took the action; (None, why not) if it refused, or if none can tell."""
        if self.watched and self.called:
            return self.result, self.error
        what = f"{self.msg.command} of {getattr(self.msg.obj, 'name', self.msg.obj)!r}"
        if self.watched:  # the RunEngine gave up on the message before it reached the device
            return None, RuntimeError(f"{what} never reached the device")
        # not known whether it moved: the plan ends (its clean-up makes its instrument safe) rather than go on
        return None, RuntimeError(f"{what}: its answer was lost to another plan's failure")


def _failure(status: Any) -> FailedStatus:
    """The exception the RunEngine raises for a failed status, with the device's own error as the cause."""
    err = FailedStatus(status)
    try:
        err.__cause__ = status.exception(timeout=0)
    except Exception as exc:  # a status without an exception, or one that will not say
        err.__cause__ = exc
    return err


class _Scheduler:
    def __init__(self, plans: Mapping[Hashable, Plan], exclusive: Iterable[Any]) -> None:
        self.lanes = [_Lane(key, plan) for key, plan in plans.items()]
        self.exclusive = list(exclusive)
        self.counter = InterruptionCounter()
        self.seen_interruptions = 0
        self.holders: dict[Hashable, _Lane] = {}
        self.queues: defaultdict[Hashable, deque[_Lane]] = defaultdict(deque)
        # keyed by id(); the values keep the objects alive, so an id is never reused while it is a key
        self.owners: dict[int, tuple[Any, _Lane]] = {}  # status -> the lane that started it
        self.movers: dict[int, tuple[Any, _Lane]] = {}  # device -> the lane that last moved it
        self.delivered: dict[int, Any] = {}  # failed statuses already thrown into their lane
        self.current: _Lane | None = None

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> Plan:
        yield Msg("null", self.counter)  # the RunEngine now tells the counter of every pause and suspension
        self.seen_interruptions = self.counter.count
        try:
            for lane in self.lanes:
                self._resume(lane, lambda lane=lane: lane.plan.send(None))
            while active := [lane for lane in self.lanes if not lane.done]:
                lane = self._pick(active)
                if lane is None:
                    yield from self._wait_any(active)
                else:
                    yield from self._step(lane)
        except GeneratorExit:  # a halt: nothing more may be yielded
            for lane in self.lanes:
                with contextlib.suppress(RuntimeError):
                    lane.plan.close()
            raise
        except BaseException as exc:  # an abort, stop or halt, or a fault here: every plan cleans up
            yield from self._broadcast(exc)
            raise
        return {lane.key: lane.error for lane in self.lanes}

    def _pick(self, active: list[_Lane]) -> _Lane | None:
        """The running plan while it can go on (never switch inside an event), else the first that can."""
        if self.current is None or self.current.done or not self._ready(self.current):
            self.current = next((lane for lane in active if self._ready(lane)), None)
        return self.current

    def _ready(self, lane: _Lane) -> bool:
        msg = lane.next_msg()
        if msg.command == "wait" and msg.kwargs.get("timeout") is None:
            return all(status.done for _, status in lane.groups.get(_group(msg), []))
        if msg.command == ACQUIRE:
            resource = msg.args[0]
            return resource not in self.holders and self.queues[resource][0] is lane
        if msg.command in _ACTIONS and any(msg.obj is device for device in self.exclusive):
            return not any(
                device is msg.obj and not status.done
                for other in self.lanes
                if other is not lane and not other.done
                for statuses in other.groups.values()
                for device, status in statuses
            )
        return True

    def _wait_any(self, active: list[_Lane]) -> Plan:
        running = [s for lane in active for statuses in lane.groups.values() for _, s in statuses if not s.done]
        if not running:
            waiting = {str(lane.key): str(lane.next_msg().command) for lane in active}
            raise RuntimeError(f"concurrent plans wait on each other: {waiting}")
        try:
            yield Msg("wait_for", None, [_first_done(running)])
        except Exception as exc:
            if isinstance(exc, _ENGINE_INTERRUPTS):
                raise
            self._route(exc, None, None)
        self._after_interruption()

    def _step(self, lane: _Lane) -> Plan:
        replaying = bool(lane.replay)
        msg = lane.replay.popleft() if replaying else lane.next_msg()
        if msg.command in (ACQUIRE, RELEASE):
            self._resource(lane, msg)
            return
        if msg.command == "wait":
            failed = next((s for _, s in lane.groups.get(_group(msg), []) if s.done and not s.success), None)
            if failed is not None:  # do not wait on the RunEngine to tell: it keeps only the latest failure
                lane.groups.pop(_group(msg), None)
                self.delivered[id(failed)] = failed
                self._throw(lane, _failure(failed))
                return
        call = None
        if msg.command in _ACTIONS:
            self.movers[id(msg.obj)] = (msg.obj, lane)
            call = _Call(msg)
        try:
            with call.watching() if call is not None else contextlib.nullcontext():
                response = yield msg
        except Exception as exc:
            if isinstance(exc, _ENGINE_INTERRUPTS):
                raise
            self._route(exc, lane, msg, call, replaying=replaying)
            self._after_interruption()
            return
        self._settle(lane, msg, response, replaying)
        self._after_interruption()
        if not replaying:
            self._resume(lane, lambda: lane.plan.send(response))

    # -- bookkeeping ------------------------------------------------------------------------------
    def _settle(self, lane: _Lane, msg: Msg, response: Any, replaying: bool) -> None:
        """Record what the RunEngine did with `msg`: a status to wait for, a group waited for, a checkpoint."""
        if msg.command in _ACTIONS and hasattr(response, "add_callback"):
            lane.groups.setdefault(_group(msg), []).append((msg.obj, response))
            self.owners[id(response)] = (response, lane)
        elif msg.command == "wait":
            lane.groups.pop(_group(msg), None)
        if replaying:
            return
        if msg.command in _REWIND_POINTS:
            lane.actions.clear()
        elif msg.command in _ACTIONS or msg.command == "wait":
            lane.actions.append(msg)

    def _after_interruption(self) -> None:
        """After a pause or suspension, rewind every plan that was in the middle of an action."""
        if self.counter.count == self.seen_interruptions:
            return
        self.seen_interruptions = self.counter.count
        for lane in self.lanes:
            if not lane.done and lane.in_action():
                lane.replay = deque(lane.actions)

    def _resource(self, lane: _Lane, msg: Msg) -> None:
        resource = msg.args[0]
        if msg.command == ACQUIRE:
            self.holders[resource] = lane
        elif self.holders.get(resource) is lane:
            del self.holders[resource]
        self._resume(lane, lambda: lane.plan.send(None))

    def _route(
        self,
        exc: Exception,
        lane: _Lane | None,
        msg: Msg | None,
        call: _Call | None = None,
        *,
        replaying: bool = False,
    ) -> None:
        """Give an exception the RunEngine threw in to the plan it belongs to: a failed status's, else `lane`.

        If it is another plan's, it came in place of the answer to `msg` (`lane`'s): `call` says what that was.
        """
        owner = lane
        if isinstance(exc, FailedStatus) and exc.args:
            status = exc.args[0]
            if id(status) in self.delivered:
                owner = None  # already thrown into its plan when that plan came to wait for it
            else:
                device = getattr(status, "device", None) or getattr(status, "obj", None)
                found = self.owners.get(id(status)) or self.movers.get(id(device))
                if found is None:
                    raise exc  # no plan started it: the batch as a whole fails
                owner = found[1]
                self.delivered[id(status)] = status
        if lane is not None and msg is not None and owner is not lane and not lane.done:
            # the RunEngine ran `msg`, but its response made way for another plan's failure
            response, refused = call.outcome() if call is not None else (None, None)
            if refused is not None:  # `lane` must not go on as if its device had moved
                self._throw(lane, refused)
            else:
                self._settle(lane, msg, response, replaying)
                if not replaying:
                    self._resume(lane, lambda: lane.plan.send(response))
        if owner is not None and not owner.done:
            self._throw(owner, exc)

    def _throw(self, lane: _Lane, exc: Exception) -> None:
        """Throw `exc` into a plan; what it was doing since its checkpoint is not re-done after that."""
        lane.replay.clear()
        lane.actions.clear()
        self._resume(lane, lambda: lane.plan.throw(exc))

    def _resume(self, lane: _Lane, advance: Callable[[], Msg]) -> None:
        """Advance a plan by one message (sending or throwing), and note where it ended if it did."""
        if lane.head is not None and lane.head.command == ACQUIRE:  # granted, or given up for an exception
            queue = self.queues[lane.head.args[0]]
            if lane in queue:
                queue.remove(lane)
        try:
            lane.head = advance()
        except StopIteration:
            self._finish(lane, None)
        except Exception as exc:
            self._finish(lane, exc)
        else:
            if lane.head.command == ACQUIRE:
                self.queues[lane.head.args[0]].append(lane)

    def _finish(self, lane: _Lane, error: Exception | None) -> None:
        lane.done, lane.error, lane.head = True, error, None
        lane.replay.clear()
        for resource in [r for r, holder in self.holders.items() if holder is lane]:
            del self.holders[resource]

    def _broadcast(self, exc: BaseException) -> Plan:
        """Throw `exc` into every unfinished plan and run its clean-up to the end."""
        for lane in self.lanes:
            if lane.done:
                continue
            lane.replay.clear()
            pending: BaseException | None = exc
            response: Any = None
            while True:
                try:
                    msg = lane.plan.throw(pending) if pending is not None else lane.plan.send(response)
                except BaseException:  # it ended, as it should; the original exception is re-raised
                    break
                pending, response = None, None
                if msg.command in (ACQUIRE, RELEASE):
                    continue  # nothing to hand out any more
                try:
                    response = yield msg
                except BaseException as again:
                    pending = again
            self._finish(lane, exc if isinstance(exc, Exception) else None)


def concurrently(plans: Mapping[Hashable, Plan], *, exclusive: Iterable[Any] = ()) -> Plan:
    """Run `plans` at once through one RunEngine; returns {key: the exception its plan ended with, or None}.

    `exclusive`: devices that move for one plan at a time (a transfer robot); the others wait their turn.
    """
    return (yield from bpp.rewindable_wrapper(_Scheduler(plans, exclusive).run(), False))
