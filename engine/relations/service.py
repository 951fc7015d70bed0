"""The relations layer's facade: what the API calls, one method per operation.

``Relations`` owns no state but its store and engine. Each write runs in one
``Store.transact``: its build function reads the latest state under the store's write lock,
re-checks every invariant there (existence, cardinality, list caps) and returns one `Changes`,
so a relation, its mirror, their metadata rows and positions land in one atomic batch at one
revision, and two racing writes cannot both pass a cardinality check. Object-level access
checks (tokens with a subject) ask the engine before the transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dsl.schema import Schema
from engine.engine import Engine
from engine.errors import EngineError, SchemaNotFound
from engine.hooks import RawWriter
from engine.relations import backup, layout, links, operations, registry
from engine.relations.errors import (
    Forbidden,
    NotFound,
    Unauthenticated,
)
from engine.relations.links import Batch
from engine.relations.listing import (
    ListPage,
    ListQuery,
    after_in_memory,
    by_created,
    cursor_row,
    page,
    sort_rows,
)
from engine.relations.model import (
    ApiToken,
    Principal,
    Relation,
    RelationType,
    Settings,
    micros,
)
from engine.relations.pairs import PairsCache
from engine.relations.raw_deletes import RawDeletes
from engine.relations.raw_writes import RawWrites
from engine.suggest import suggest
from engine.types import Entity
from storage.base import Changes, SnapshotReader, SnapToken, Store, Subject, TupleFilter
from storage.errors import TenantNotFound

T = TypeVar("T")

TOKEN_PREFIX = "pat_"
_BASE62 = string.ascii_letters + string.digits
#: What ``create_token`` issues: the prefix and 32 base62 characters.
_SECRET = re.compile(TOKEN_PREFIX + "[A-Za-z0-9]{32}")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Linked:
    row: Relation
    mirror: Relation | None
    token: SnapToken


class Relations:
    def __init__(
        self, store: Store, engine: Engine, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.engine = engine
        #: Seconds since the epoch: every time the layer writes (rows, types, tokens) and when
        #: tokens expire (tests move it).
        self.clock = clock
        #: Decoded relationship types by their stored bytes (read on every write).
        self._decoded: dict[bytes, RelationType] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def now_micros(self) -> int:
        """Now by the layer's clock, in microseconds since the epoch (as rows store times)."""
        return micros(self.clock())

    def install(self, writer: RawWriter) -> None:
        """Register the layer's write hooks: a raw delete of one side of a pair deletes the
        other side and both metadata rows; a raw write of one new side of a pair is refused."""
        pairs = PairsCache()
        writer.register(RawDeletes(pairs))
        writer.register(RawWrites(pairs))

    def _schema(self, tenant: str) -> Schema:
        try:
            return self.engine.schema(tenant)[1]
        except SchemaNotFound as exc:
            # A missing prerequisite, not a bad request: 404, as the Permify routes answer.
            raise NotFound(
                f"tenant {tenant} has no authorization schema yet: write one first"
            ) from exc

    def _transact(
        self, tenant: str, build: Callable[[SnapshotReader], tuple[Changes, T]]
    ) -> tuple[SnapToken, T]:
        box: list[T] = []

        def run(reader: SnapshotReader) -> Changes:
            changes, result = build(reader)
            box.append(result)
            return changes

        token = self.store.transact(tenant, run)
        return token, box[0]

    def reader(self, tenant: str) -> SnapshotReader:
        return self.store.reader(tenant)

    def settings(self, tenant: str) -> Settings:
        return layout.settings(self.store.reader(tenant))

    def settings_at_head(self, tenant: str) -> tuple[Settings, SnapToken]:
        """The settings and the token of the snapshot they were read at."""
        reader = self.store.reader(tenant)
        return layout.settings(reader), reader.token

    def put_settings(self, tenant: str, value: Settings) -> SnapToken:
        changes = Changes()
        layout.put_settings(changes, value)
        return self.store.write(tenant, changes)

    # -- tokens -----------------------------------------------------------------------------

    def authenticate(self, tenant: str, secret: str) -> Principal:
        """The principal a PAT stands for on ``tenant``: 401 when unknown, expired or revoked
        anywhere; 404 (as for an unknown tenant) when it belongs to another tenant.

        A constant number of reads, however many tenants there are: the store-wide claim of
        the token's hash names its tenant."""
        if not _SECRET.fullmatch(secret):  # not one we issued: nothing to look up
            raise Unauthenticated("invalid token")
        if not self.store.claims_complete:
            self.claim_tokens()
        digest = _digest(secret)
        holder = self.store.claimant(layout.TOKENS, (digest,))
        if holder is not None and holder != tenant:
            # An expired or revoked token is a 401 everywhere, never a 404.
            if _live(self._token_of(holder, digest), self.now_micros()):
                raise TenantNotFound(tenant)
            raise Unauthenticated("invalid token")
        token = self._token_of(tenant, digest)
        if token is None:
            raise Unauthenticated("invalid token")
        if not _live(token, self.now_micros()):
            raise Unauthenticated("the token is expired or revoked")
        return Principal(frozenset(token.scopes), token.subject, token.id)

    def token_tenant(self, secret: str) -> str:
        """The tenant an API token belongs to (401 when it is none of ours): what a path
        without a tenant serves. Whether the token is still live is `authenticate`'s to say."""
        if not _SECRET.fullmatch(secret):
            raise Unauthenticated("invalid token")
        if not self.store.claims_complete:
            self.claim_tokens()
        holder = self.store.claimant(layout.TOKENS, (_digest(secret),))
        if holder is None:
            raise Unauthenticated("invalid token")
        return holder

    def _token_of(self, tenant: str, digest: str) -> ApiToken | None:
        try:
            return layout.token_by_hash(self.store.reader(tenant), digest)
        except TenantNotFound:  # e.g. deleted a moment ago
            return None

    def claim_tokens(self) -> None:
        """Claim the hash of every token not revoked, then mark the store's claims complete:
        what a store written before claims existed needs once (``Store.claims_complete``)."""
        cursor = ""
        while True:
            tenants = self.store.list_tenants(page_size=500, cursor=cursor)
            for info in tenants.items:
                try:
                    if any(t.revoked_at is None for t in layout.tokens(self.store.reader(info.id))):
                        self.store.transact(info.id, _claim_tokens)
                except TenantNotFound:  # deleted since it was listed
                    continue
            if not tenants.cursor:
                break
            cursor = tenants.cursor
        self.store.mark_claims_complete()

    def create_token(
        self,
        tenant: str,
        name: str,
        scopes: Sequence[str],
        subject: str | None,
        expires_at: int | None,
    ) -> tuple[ApiToken, str]:
        secret = TOKEN_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(32))
        token = ApiToken(
            id=f"tok-{uuid.uuid4()}",
            name=name,
            hash=_digest(secret),
            scopes=tuple(scopes),
            subject=subject,
            created_at=self.now_micros(),
            expires_at=expires_at,
        )
        changes = Changes()
        layout.put_token(changes, token)
        self.store.write(tenant, changes)
        return token, secret

    def tokens(self, tenant: str) -> list[ApiToken]:
        return sorted(layout.tokens(self.store.reader(tenant)), key=lambda t: (t.created_at, t.id))

    def revoke_token(self, tenant: str, token_id: str) -> None:
        def build(reader: SnapshotReader) -> tuple[Changes, None]:
            token = layout.token_by_id(reader, token_id)
            if token is None or token.revoked_at is not None:
                raise NotFound(f"token {token_id} not found")
            changes = Changes()
            layout.put_token(
                changes, ApiToken(**{**_fields(token), "revoked_at": self.now_micros()})
            )
            return changes, None

        self._transact(tenant, build)

    # -- registry ---------------------------------------------------------------------------

    def register_type(
        self,
        tenant: str,
        request: registry.TypeRequest,
        may: Callable[[bool], None] | None = None,
    ) -> tuple[RelationType, bool, SnapToken]:
        """Register a type, or refine the one with the same key. ``may`` is told, under the
        write lock, whether the key exists already (so a create-only caller cannot refine a type
        created a moment before), and may refuse."""
        schema = self._schema(tenant)

        def build(reader: SnapshotReader) -> tuple[Changes, tuple[RelationType, bool]]:
            if may is not None:
                found = registry.find(
                    layout.types(reader, self._decoded),
                    request.source_type,
                    request.role,
                    request.target_type,
                )
                may(found is not None)
            changes = Changes()
            result = registry.register(
                reader, changes, request, schema, layout.settings(reader), now=self.now_micros()
            )
            return changes, result

        token, (rt, created) = self._transact(tenant, build)
        return rt, created, token

    def types(self, tenant: str) -> list[RelationType]:
        return layout.types(self.store.reader(tenant), self._decoded)

    def relation_type(self, tenant: str, type_id: str) -> RelationType:
        rt = layout.relation_type(self.store.reader(tenant), type_id)
        if rt is None:
            raise NotFound(f"relationship type {type_id} not found")
        return rt

    def delete_type(self, tenant: str, type_id: str) -> SnapToken:
        def build(reader: SnapshotReader) -> tuple[Changes, None]:
            changes = Changes()
            registry.delete(reader, changes, type_id)
            return changes, None

        return self._transact(tenant, build)[0]

    def object_type_names(self, tenant: str) -> list[str]:
        return sorted(self._schema(tenant).entities)

    def holders(self, tenant: str, entity_id: str) -> list[str]:
        """The object types (entity types of the schema) that hold ``entity_id``: those with a
        relation row or a tuple on ``type:entity_id``, as source or as target."""
        reader = self.store.reader(tenant)
        found = []
        for entity_type in sorted(self._schema(tenant).entities):
            if (
                any(
                    True for _ in reader.records(layout.BY_TUPLE, (entity_type, entity_id), limit=1)
                )
                or any(
                    True
                    for _ in reader.records(layout.BY_SUBJECT, (entity_type, entity_id), limit=1)
                )
                or reader.read_tuples(
                    TupleFilter(entity_type=entity_type, entity_ids=(entity_id,)), page_size=1
                ).items
                or reader.read_tuples(
                    TupleFilter(subject_type=entity_type, subject_ids=(entity_id,)), page_size=1
                ).items
            ):
                found.append(entity_type)
        return found

    def unknown_object_type(self, tenant: str, name: str, field: str) -> NotFound | None:
        schema = self._schema(tenant)
        return (
            None if schema.entity(name) is not None else registry.unknown_type(name, field, schema)
        )

    # -- access -----------------------------------------------------------------------------

    def allowed(
        self, tenant: str, principal: Principal, entity: tuple[str, str], permission: str
    ) -> bool:
        """Object-level check for tokens with a subject; always true otherwise, and when the
        schema has no such permission on the entity's type."""
        if principal.subject is None:
            return True
        schema = self._schema(tenant)
        definition = schema.entity(entity[0])
        if definition is None or permission not in definition.references:
            return True
        subject_type, _, subject_id = principal.subject.partition(":")
        try:
            result = self.engine.check(
                tenant, Entity(entity[0], entity[1]), permission, Subject(subject_type, subject_id)
            )
        except EngineError:
            return False
        return result.allowed

    def readable(self, tenant: str, principal: Principal, row: Relation) -> bool:
        if principal.subject is None or row.owned_by == principal.subject:
            return True
        permission = self.settings(tenant).read_permission
        return self.allowed(tenant, principal, (row.entity_type, row.entity_id), permission)

    def writable(self, tenant: str, principal: Principal, row: Relation) -> bool:
        if principal.subject is None or row.owned_by == principal.subject:
            return True
        permission = self.settings(tenant).write_permission
        return self.allowed(tenant, principal, (row.entity_type, row.entity_id), permission)

    def visible_filter(self, tenant: str, principal: Principal) -> Callable[[Relation], bool]:
        if principal.subject is None:
            return lambda _row: True
        settings = self.settings(tenant)
        subject = principal.subject
        answers: dict[tuple[str, str], bool] = {}

        def keep(row: Relation) -> bool:
            if row.owned_by == subject:
                return True
            key = (row.entity_type, row.entity_id)
            if key not in answers:
                answers[key] = self.allowed(tenant, principal, key, settings.read_permission)
            return answers[key]

        return keep

    # -- rows -------------------------------------------------------------------------------

    def row(self, tenant: str, principal: Principal, relation_id: str) -> Relation:
        """A row by id: 404 when missing or not readable (the two are not told apart)."""
        row = layout.load(self.store.reader(tenant), relation_id)
        if row is None or not self.readable(tenant, principal, row):
            raise NotFound(f"relation {relation_id} not found")
        return row

    def link(  # noqa: PLR0917 - the API calls it through `Services.run`, which is positional
        self,
        tenant: str,
        principal: Principal,
        rt_id: str,
        source: tuple[str, str],
        target: tuple[str, str],
        metadata: dict[str, Any] | None = None,
    ) -> Linked:
        """Create ``source -rt-> target`` and its mirror in one transaction."""
        schema = self._schema(tenant)

        def build(reader: SnapshotReader) -> tuple[Changes, tuple[Relation, Relation | None]]:
            types = layout.types(reader, self._decoded)
            batch = Batch(reader, types, self.now_micros())
            rt = batch.types.get(rt_id)
            if rt is None:
                raise NotFound(f"relationship type {rt_id} not found")
            row, mirror = links.create(
                batch, schema, rt, source, target, metadata=metadata, owner=principal.owner
            )
            return batch.finish(), (batch.rows.row(row.id) or row, mirror)

        token, (row, mirror) = self._transact(tenant, build)
        return Linked(row, mirror, token)

    def unlink(self, tenant: str, relation_id: str, check: Callable[[Relation], None]) -> SnapToken:
        """Delete a row and its pair; ``check`` may refuse (it sees the row first)."""

        def build(reader: SnapshotReader) -> tuple[Changes, None]:
            row = layout.load(reader, relation_id)
            if row is None:
                raise NotFound(f"relation {relation_id} not found")
            check(row)
            batch = Batch(reader, (), self.now_micros())
            links.remove(batch, row)
            return batch.finish(), None

        return self._transact(tenant, build)[0]

    def update(
        self,
        tenant: str,
        relation_id: str,
        check: Callable[[Relation], None],
        change: Callable[[Relation], dict[str, Any] | None],
        *,
        none_clears: bool = False,
    ) -> tuple[Relation, SnapToken]:
        """Set new metadata on a row and its pair. ``change`` returns the new metadata; None
        means "nothing to change" unless ``none_clears``. Metadata equal to the current value
        writes nothing (``updated_at`` stays) and the token returned is the head's."""

        def build(reader: SnapshotReader) -> tuple[Changes, Relation]:
            row = layout.load(reader, relation_id)
            if row is None:
                raise NotFound(f"relation {relation_id} not found")
            check(row)
            new = change(row)
            if (new is None and not none_clears) or new == row.metadata:
                raise _Unchanged(row)
            batch = Batch(reader, (), self.now_micros())
            updated = links.set_metadata(batch, row, new)
            return batch.finish(), updated

        try:
            token, row = self._transact(tenant, build)
        except _Unchanged as unchanged:
            return unchanged.row, self.store.head(tenant)
        return row, token

    def operate(
        self,
        tenant: str,
        principal: Principal,
        source: tuple[str, str],
        ops: Sequence[operations.RoleOp],
        check_targets: Callable[[set[str]], None],
    ) -> tuple[dict[str, list[Relation]], SnapToken]:
        """Connect / disconnect / set on an entity's roles: plan every role (400s), then effect
        scopes (403), then write (409s)."""
        schema = self._schema(tenant)

        def build(reader: SnapshotReader) -> tuple[Changes, dict[str, list[Relation]]]:
            batch = Batch(reader, layout.types(reader, self._decoded), self.now_micros())
            plans = operations.plan(batch, source, ops)
            check_targets({ref for p in plans for ref in p.targets})
            missing = []
            if any(p.added for p in plans) and not principal.allows("relationship:create"):
                missing.append("relationship:create")
            if any(p.removed for p in plans) and not principal.allows("relationship:delete"):
                missing.append("relationship:delete")
            if missing:
                raise Forbidden.missing(*missing)
            result = operations.apply(batch, schema, source, plans, principal.owner)
            return batch.finish(), result

        token, result = self._transact(tenant, build)
        return result, token

    # -- backups ----------------------------------------------------------------------------

    def dump(self, tenant: str) -> tuple[backup.Dump, SnapToken]:
        """The layer's settings, types and rows, read under the write lock, and the token of
        the revision they belong to (read the tuples at that token for a consistent backup)."""

        def build(reader: SnapshotReader) -> Changes:
            raise _Read((backup.dump(reader), reader.token))

        try:
            self.store.transact(tenant, build)
        except _Read as read:
            return read.value
        raise AssertionError("unreachable: the build always raises")  # pragma: no cover

    def restore(self, tenant: str, request: backup.Restore) -> SnapToken:
        """Write a backup's settings, types and rows (with their tuples) in one write."""
        schema = self._schema(tenant)

        def build(reader: SnapshotReader) -> tuple[Changes, None]:
            changes = Changes()
            backup.restore(reader, changes, schema, request)
            return changes, None

        return self._transact(tenant, build)[0]

    # -- lists ------------------------------------------------------------------------------

    def entity_rows(
        self, tenant: str, entity: tuple[str, str], direction: str
    ) -> list[tuple[Relation, str]]:
        """An entity list's candidates: (row, direction) of the entity's outgoing and incoming
        rows; in ``both`` an incoming row with a pair is left out (its mirror is outgoing)."""
        reader = self.store.reader(tenant)
        found: list[tuple[Relation, str]] = []
        if direction in ("outgoing", "both"):
            found.extend((row, "outgoing") for row in layout.outgoing(reader, *entity))
        if direction in ("incoming", "both"):
            for row in layout.incoming(reader, *entity):
                if direction == "both" and row.pair_id:
                    continue
                found.append((row, "incoming"))
        return found

    def list_by_created(
        self,
        tenant: str,
        query: ListQuery,
        keep: Callable[[Relation], bool],
        type_ids: Sequence[str] | None = None,
    ) -> ListPage:
        """A created_at-ordered list streamed from the indexes (keyset cursors seek)."""
        reader = self.store.reader(tenant)
        descending = bool(query.created_order)
        start = cursor_row(reader, query, keep)
        return page(by_created(reader, type_ids, descending, start), query, keep)

    def list_sorted(
        self,
        tenant: str,
        candidates: Iterable[Relation],
        query: ListQuery,
        keep: Callable[[Relation], bool],
        keys: dict[str, Callable[[Relation], Any]],
    ) -> ListPage:
        """Collect, sort in memory, then page (offset or keyset)."""
        reader = self.store.reader(tenant)
        start = cursor_row(reader, query, keep)
        rows = sort_rows([r for r in candidates if keep(r)], query.sort, keys)
        rows = after_in_memory(rows, start, bool(query.created_order))
        return page(rows, query, lambda _r: True)

    def list_concatenated(
        self,
        tenant: str,
        type_ids: Sequence[str],
        query: ListQuery,
        keep: Callable[[Relation], bool],
    ) -> ListPage:
        """Rows of several types, type after type, each by created_at (the record list's
        ``kind`` order)."""
        reader = self.store.reader(tenant)
        descending = bool(query.sort and query.sort[0][1])
        inner = bool(len(query.sort) > 1 and query.sort[1][1])

        def stream() -> Iterator[Relation]:
            for type_id in reversed(type_ids) if descending else type_ids:
                yield from by_created(reader, [type_id], inner)

        return page(stream(), query, keep)

    def candidates(
        self,
        tenant: str,
        *,
        sources: Iterable[tuple[str, str]] = (),
        targets: Iterable[tuple[str, str]] = (),
    ) -> list[Relation]:
        reader = self.store.reader(tenant)
        found: dict[str, Relation] = {}
        for entity in sources:
            found.update((r.id, r) for r in layout.outgoing(reader, *entity))
        for entity in targets:
            found.update((r.id, r) for r in layout.incoming(reader, *entity))
        return list(found.values())

    def suggest_roles(
        self, tenant: str, source_type: str, target_type: str, role: str
    ) -> tuple[str, ...]:
        types = layout.types(self.store.reader(tenant), self._decoded)
        pair = sorted(
            {
                rt.role
                for rt in types
                if rt.source_type == source_type and rt.target_type == target_type
            }
        )
        others = suggest(role, {rt.role for rt in types if rt.source_type == source_type})
        ordered = list(dict.fromkeys([*pair, *others]))
        return tuple(ordered[:3]) if ordered else ()


class _Read(Exception):
    """Carries what a read under the write lock found out of its transaction (which so
    writes nothing)."""

    def __init__(self, value: tuple[backup.Dump, SnapToken]) -> None:
        super().__init__("read")
        self.value = value


class _Unchanged(Exception):
    """Aborts a transaction that would change nothing (so no empty revision is written)."""

    def __init__(self, row: Relation) -> None:
        super().__init__(row.id)
        self.row = row


def _live(token: ApiToken | None, now: int) -> bool:
    return (
        token is not None
        and token.revoked_at is None
        and (token.expires_at is None or token.expires_at > now)
    )


def _claim_tokens(reader: SnapshotReader) -> Changes:
    changes = Changes()
    for token in layout.tokens(reader):
        if token.revoked_at is None:
            changes.put_claims.append((layout.TOKENS, (token.hash,)))
    return changes


def _fields(token: ApiToken) -> dict[str, Any]:
    return {name: getattr(token, name) for name in token.__dataclass_fields__}
