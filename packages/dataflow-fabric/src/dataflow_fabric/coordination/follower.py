"""The runtime's side of coordination: what a worker does with the messages and with a change
of role. Kept out of runtime.py, which calls these through ``Fabric.on_message`` etc.

* ``changed``: every worker drops dependant parameterized entries; the leader revalidates the
  named sources and refreshes dependant materialized products; followers mark them pending.
* ``pending``: followers serve the current value marked stale until ``refreshed``.
* ``refreshed``: followers load the shared value (and push it to their SSE subscribers).
* ``wanted``: a follower had no shared value for a key (a tenant the leader has not seen):
  the leader computes it, shares it, and refreshes it from then on.
* Leadership won, or the channel reconnected: the leader refreshes every materialized product
  (changes may have been announced while nobody led); a follower reloads every shared value.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtime import Entry, Fabric, Key, ProductState
    from ..source import Source

log = logging.getLogger("dataflow.fabric.coordination")
TAKEOVER = "(leader changed)"


def materialized(fabric: Fabric) -> list[ProductState]:
    return [s for s in fabric.products.values() if s.spec.mode == "materialized"]


def on_message(fabric: Fabric, message: dict[str, Any]) -> None:
    kind = message.get("kind")
    coordinator = fabric.coordinator
    if coordinator is None:
        return
    if kind == "changed":
        names = frozenset(n for n in message.get("names", ()) if isinstance(n, str))
        if coordinator.is_leader:
            fabric._spawn(leader_applies(fabric, names))
        else:
            fabric.changed(names, announce=False)
        return
    product, tenant = message.get("product"), message.get("tenant")
    state = fabric.products.get(product) if isinstance(product, str) else None
    if state is None or not (tenant is None or isinstance(tenant, str)):
        return
    key: Key = (tenant, ())
    if kind == "pending" and not coordinator.is_leader:
        state.remote_pending.add(tenant)
    elif kind == "refreshed" and not coordinator.is_leader:
        fabric._spawn(load_shared(fabric, state, key, publish=True))
    elif kind == "wanted" and coordinator.is_leader and key not in state.entries:
        fabric._spawn(compute_quietly(fabric, state, key))


async def leader_applies(fabric: Fabric, names: frozenset[str]) -> None:
    for name in names:
        source = fabric.sources.get(name)
        if source is not None:
            await source.poll()  # connectors that keep copies revalidate them first
    fabric.changed(names, announce=False)


async def compute_quietly(fabric: Fabric, state: ProductState, key: Key) -> None:
    from ..errors import ProductFailedError

    try:
        await fabric._compute(state, key, key[0], {}, "wanted")
    except ProductFailedError:
        pass  # logged and traced by _compute


async def load_shared(fabric: Fabric, state: ProductState, key: Key, *,
                      publish: bool = False) -> Entry | None:
    from ..runtime import Entry

    coordinator = fabric.coordinator
    if coordinator is None:
        return None
    try:
        shared = await coordinator.read_entry(state.spec.name, key[0])
    except Exception as exc:
        log.warning("reading the shared value of %s failed: %s", state.spec.name, type(exc).__name__)
        return None
    if shared is None:
        return None
    current = state.entries.get(key)
    mark = (shared.token, shared.seq)
    if current is not None and state.shared_marks.get(key) == mark:
        if not shared.pending:
            state.remote_pending.discard(key[0])
        return current
    # any other mark is newer: the store only ever holds the latest write (tokens restart
    # from 1 when Redis restarts without persistence, so marks are compared for equality)
    entry = Entry(json.loads(shared.body), shared.body, shared.computed_at, time.monotonic(),
                  stale=shared.stale, version=shared.token * 1_000_000 + shared.seq)
    state.entries[key] = entry
    state.shared_marks[key] = mark
    if shared.pending:
        state.remote_pending.add(key[0])
    else:
        state.remote_pending.discard(key[0])
    if publish:
        fabric._publish(state, key[0], entry)
    return entry


def on_leadership(fabric: Fabric, leader: bool) -> None:
    for source in fabric.sources.values():
        if fabric._leader_only(source):  # stream consumers follow the leadership
            fabric._spawn(fabric._open_source(source, False) if leader else close(source))
    if leader:
        for state in materialized(fabric):
            state.dirty.add(TAKEOVER)
            fabric._schedule(state)
        return
    for state in materialized(fabric):
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if state.refreshing is not None:
            state.refreshing.cancel()


async def close(source: Source) -> None:
    try:
        await source.connector.close()
    except Exception as exc:
        log.warning("closing source %s failed: %s", source.name, type(exc).__name__)
    source.opened = False


def on_resync(fabric: Fabric) -> None:
    coordinator = fabric.coordinator
    if coordinator is None:
        return
    if coordinator.is_leader:
        on_leadership(fabric, True)
        return
    for state in materialized(fabric):
        for key in list(state.entries) or [(None, ())]:
            fabric._spawn(load_shared(fabric, state, key, publish=True))


async def share(fabric: Fabric, state: ProductState, tenant: str | None, entry: Entry) -> None:
    """The leader computed a materialized value: share it (fenced)."""
    coordinator = fabric.coordinator
    if coordinator is None or not coordinator.is_leader:
        return
    try:
        await coordinator.store(state.spec.name, tenant, entry.body, entry.computed_at, entry.stale)
    except Exception as exc:
        log.warning("sharing %s failed: %s", state.spec.name, type(exc).__name__)


async def announce(fabric: Fabric, names: frozenset[str]) -> None:
    coordinator = fabric.coordinator
    if coordinator is None:
        return
    try:
        await coordinator.announce(names)
    except Exception as exc:
        log.warning("announcing a change of %s failed: %s", sorted(names), type(exc).__name__)


async def mark_pending(fabric: Fabric, state: ProductState) -> None:
    coordinator = fabric.coordinator
    if coordinator is None or not coordinator.is_leader:
        return
    for tenant in {key[0] for key in state.entries} or {None}:
        try:
            await coordinator.pending(state.spec.name, tenant)
        except Exception as exc:
            log.warning("marking %s pending failed: %s", state.spec.name, type(exc).__name__)


async def want(fabric: Fabric, state: ProductState, tenant: str | None) -> None:
    coordinator = fabric.coordinator
    if coordinator is None:
        return
    try:
        await coordinator.publish({"kind": "wanted", "product": state.spec.name, "tenant": tenant})
    except Exception as exc:
        log.warning("asking the leader for %s failed: %s", state.spec.name, type(exc).__name__)
