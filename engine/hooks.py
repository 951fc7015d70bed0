"""Write hooks: what a layer built on the engine enforces on raw data writes.

The data API and bundles write tuples and attributes straight to the store. A layer that keeps
its own records beside some tuples (the relations layer's metadata rows) must see those writes
to keep its invariants, without the engine knowing the layer exists: it registers a `WriteHook`
on the app's `RawWriter` when the app is built, and the raw writers write through that.

Concurrency: synchronous, like the rest of the engine. A write no hook wants is one
``Store.write``; otherwise the hooks run inside one ``Store.transact``, with a reader of the
latest state while no other write can land, and whatever they add lands in the same atomic
write, at the same revision, as the change itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from engine.errors import InvalidWrite
from storage.base import Changes, SnapshotReader, SnapToken, Store


class Refused(InvalidWrite):
    """A hook refuses a raw write; ``field`` names the item it is about (``tuples[3]``), when
    it is one item of the write."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class WriteHook(Protocol):
    """Something a raw write must also do, decided under the store's write lock."""

    def wants(self, changes: Changes) -> bool:
        """Whether this hook must see ``changes`` (False keeps the write a plain one)."""
        ...

    def extend(self, reader: SnapshotReader, changes: Changes) -> None:
        """Add to ``changes`` what the write must also do; ``reader`` sees the latest state.
        May raise (`Refused`, to say why) to write nothing."""
        ...


class RawWriter:
    """Writes a tenant's raw data changes, running every registered hook that wants them."""

    def __init__(self, store: Store, hooks: Iterable[WriteHook] = ()) -> None:
        self.store = store
        self._hooks = list(hooks)

    def register(self, hook: WriteHook) -> None:
        """Run ``hook`` on every later write."""
        self._hooks.append(hook)

    def write(self, tenant: str, changes: Changes) -> SnapToken:
        """Apply ``changes`` (and what the hooks add) in one atomic write; its token."""
        build = self._builder(changes)
        if build is None:
            return self.store.write(tenant, changes)
        return self.store.transact(tenant, build)

    def write_now(self, tenant: str, changes: Changes) -> SnapToken | None:
        """`write`, when the store can make it without waiting (`Store.transact_now`); None,
        having written nothing, when it would wait."""
        build = self._builder(changes)
        return self.store.transact_now(tenant, build or (lambda reader: changes))

    def _builder(self, changes: Changes) -> Callable[[SnapshotReader], Changes] | None:
        """The transaction that runs the hooks wanting ``changes`` (None: no hook wants them)."""
        wanting = [hook for hook in self._hooks if hook.wants(changes)]
        if not wanting:
            return None

        def build(reader: SnapshotReader) -> Changes:
            for hook in wanting:
                hook.extend(reader, changes)
            return changes

        return build
