"""Bulk data files for ``stonetown import`` and ``export``: a tenant's schema, tuples and
attributes, and its relations layer, as NDJSON or CSV.

The formats (both UTF-8, one item per record, tuples and attributes mixed in any order):

* NDJSON: one JSON object per line with exactly one key, ``"tuple"`` or ``"attribute"``; blank
  lines are skipped. ``{"tuple": "doc:1#viewer@user:1"}``,
  ``{"attribute": "doc:1$public|boolean:true"}``.
* CSV (RFC 4180): the header ``kind,value``, then one row per item; ``kind`` is ``tuple`` or
  ``attribute``. ``tuple,doc:1#viewer@group:1#member``.

A value is Permify's string form (``entity_type:entity_id#relation@subject_type:subject_id
[#subject_relation]``; ``entity_type:entity_id$attribute|value_type:value`` with arrays
comma-separated) or, for what that form cannot carry (a string attribute holding ``:`` or ``|``,
an empty array, an id holding ``@`` or ``:``), a JSON object in the wire shape ``data/write``
takes (``{"entity": {"type", "id"}, "attribute", "value": {"@type", "data"}}``; in CSV, the JSON
text). ``export`` writes the string form whenever it reads back to the same item.

Besides tuples and attributes, a backup carries what restores a whole tenant, each a record of
its own kind: ``schema`` (the schema's text, first; an import writes it unless the tenant's
current schema is that text), and after the tuples and attributes the relations layer as
stored: ``relations_settings``, ``relationship_type``, ``relation`` and ``custom_object_type``
(JSON objects in the form ``GET .../relations/backup`` answers; a pair's two rows are
adjacent). An import sends those to ``POST .../relations/restore`` (admin key) in batches that
never split a pair, so the relation ids, metadata, positions, pairs and owners come back as they
were.

Import streams: records are read one at a time, collected into batches, and each batch is one
atomic ``data/write``. After every acknowledged batch the progress (next line, byte offset, a
SHA-256 of the bytes before it, the snap token) is saved beside the input as
``FILE.import-state``, so ``--resume`` continues after the last acknowledged batch; a batch that
was in flight when a run died is simply sent again (writes are idempotent). The state file goes
when an import completes.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import hashlib
import json
import os
import re
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from pydantic import ValidationError

from api import models as m
from api.client import Client, ClientError
from api.client.permify import SchemaText
from api.client.records import RelationsBackupClient
from engine.errors import InvalidRequest
from engine.notation import parse_attribute
from engine.writes import attribute_text
from storage.base import Attribute, AttributeFilter, AttributeKey, Tuple, TupleFilter


@dataclass(frozen=True, slots=True)
class Part:
    """A record that is not a tuple or an attribute: the schema's text, or a piece of the
    relations layer (a JSON object)."""

    kind: str
    value: str | dict[str, Any]


Item = Tuple | Attribute | Part
STATE_SUFFIX = ".import-state"
STATE_VERSION = 1
CSV_HEADER = ["kind", "value"]
SCHEMA = "schema"
#: The relations layer's kinds and the field of a restore request each goes to.
LAYER = {
    "relations_settings": "settings",
    "relationship_type": "types",
    "relation": "relations",
    "custom_object_type": "object_types",
}
_KINDS = ("tuple", "attribute", SCHEMA, *LAYER)
#: A restore request stays below the relations layer's body limit (1 MiB).
_RESTORE_BYTES = 512 * 1024
#: A server's field violation naming one item of a data/write: ``tuples[3]``.
_ITEM_FIELD = re.compile(r"^(tuples|attributes)\[(\d+)\]")


class ImportTarget(Protocol):
    """Where an import writes: a server's client (``api.client.Client``), or the database
    directly (``api.cli.import_direct.DirectTarget``)."""

    @property
    def tenant(self) -> str: ...

    def write_data(self, tuples: list[Tuple], attributes: list[Attribute]) -> str: ...

    def write_schema(self, text: str) -> str: ...

    def read_schema(self) -> SchemaText: ...

    def head_token(self) -> str: ...


class LayerTarget(Protocol):
    """Where an import restores the relations layer's records (``relations/restore``)."""

    def restore(self, part: Mapping[str, Any]) -> str: ...


class Format(enum.Enum):
    NDJSON = "ndjson"
    CSV = "csv"

    @classmethod
    def of(cls, path: str | None, given: str | None) -> Format:
        """``given`` (``--format``) when set, else from the extension: ``.csv`` is CSV,
        anything else (``.ndjson``, ``.jsonl``, standard streams) NDJSON."""
        if given:
            return cls(given)
        return cls.CSV if path and path.lower().endswith(".csv") else cls.NDJSON


class TransferError(Exception):
    """An import or export that cannot go on; the message says why and what to do."""


class DataFileError(TransferError):
    """A record that cannot be imported, at ``file:line``."""

    def __init__(self, label: str, line: int, message: str) -> None:
        super().__init__(f"{label}:{line}: {message}")
        self.label = label
        self.line = line
        self.message = message


# -- items <-> values -------------------------------------------------------------------------


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def parse_item(kind: str, value: object) -> Item:
    """The item a record holds; raises ValueError saying what is wrong with it."""
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(_KINDS)}")
    if kind == SCHEMA:
        if not isinstance(value, str):
            raise ValueError("a schema is the schema's text, a string")
        return Part(kind, value)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the {kind} looks like a JSON object but is not: {exc}") from None
    if kind in LAYER:
        if not isinstance(value, dict):
            raise ValueError(f"a {kind} is a JSON object")
        return Part(kind, value)
    if isinstance(value, dict):
        try:
            if kind == "tuple":
                return m.TupleIn.model_validate(value).to_tuple()
            return m.AttributeIn.model_validate(value).to_attribute()
        except ValidationError as exc:
            raise ValueError(f"invalid {kind} object: {_problems(exc)}") from None
    if not isinstance(value, str):
        raise ValueError(f"a {kind} is a string or a JSON object, not {type(value).__name__}")
    if kind == "tuple":
        return Tuple.parse(value)
    try:
        return parse_attribute(value)
    except InvalidRequest as exc:
        raise ValueError(str(exc)) from None


def item_value(item: Item) -> str | dict[str, Any]:
    """Permify's string form when it reads back to ``item``, else the wire object."""
    if isinstance(item, Part):
        return item.value
    if isinstance(item, Tuple):
        text = str(item)
        try:
            if Tuple.parse(text) == item:
                return text
        except ValueError:
            pass
        return m.tuple_json(item)
    text = attribute_text(item)
    try:
        back = parse_attribute(text)
    except InvalidRequest:
        back = None
    if back is not None and back.key == item.key and back.same_value(item):
        return text
    return m.attribute_json(item)


def _kind(item: Item) -> str:
    if isinstance(item, Part):
        return item.kind
    return "tuple" if isinstance(item, Tuple) else "attribute"


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


class Writer:
    """Writes items to a text stream in one format (``newline=""`` streams for CSV)."""

    def __init__(self, out: IO[str], fmt: Format) -> None:
        self._out = out
        self._fmt = fmt
        self._csv = csv.writer(out, lineterminator="\n") if fmt is Format.CSV else None
        if self._csv is not None:
            self._csv.writerow(CSV_HEADER)

    def write(self, item: Item) -> None:
        value = item_value(item)
        if self._csv is not None:
            self._csv.writerow([_kind(item), value if isinstance(value, str) else _json(value)])
        else:
            self._out.write(_json({_kind(item): value}) + "\n")


# -- reading records ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """Where a reader stands: the next line's number and byte offset, and the SHA-256 of every
    byte before it (so a resume can tell that the part already imported is unchanged)."""

    line: int = 1
    offset: int = 0
    digest: str = hashlib.sha256().hexdigest()


class Record:
    """One record: its item, its line, and where the record after it starts (the line and byte
    offset; ``Records.after`` adds the digest)."""

    __slots__ = ("after_line", "after_offset", "item", "line")

    def __init__(self, item: Item, line: int, after_line: int, after_offset: int) -> None:
        self.item = item
        self.line = line
        self.after_line = after_line
        self.after_offset = after_offset


class _Lines:
    """A binary file's lines, decoded, counting lines and bytes. The bytes are hashed when a
    position asks for the digest (a record's ``Records.after``), not line by line."""

    def __init__(self, handle: IO[bytes], label: str, line: int, offset: int, sha: Any) -> None:
        self._handle = handle
        self.label = label
        self.line = line  # the next line's number
        self.offset = offset
        self._sha = sha
        self._hashed = offset
        self._unhashed: deque[bytes] = deque()

    def digest_at(self, offset: int) -> str:
        """The SHA-256 of every byte before ``offset``: a line boundary read already, at or
        after the one last asked for."""
        while self._hashed < offset:
            raw = self._unhashed.popleft()
            self._sha.update(raw)
            self._hashed += len(raw)
        if self._hashed != offset:
            raise ValueError(f"offset {offset} is not the next line boundary to hash")
        return str(self._sha.hexdigest())

    def __iter__(self) -> Iterator[str]:
        unhashed = self._unhashed
        for raw in self._handle:
            number = self.line
            self.line += 1
            first = self.offset == 0
            self.offset += len(raw)
            unhashed.append(raw)
            try:
                yield raw.decode("utf-8-sig" if first else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataFileError(self.label, number, f"not UTF-8: {exc.reason}") from None


class Records:
    """The records of a file, in order (an iterator), and the position after any of them."""

    def __init__(self, lines: _Lines, records: Iterator[Record]) -> None:
        self._lines = lines
        self._records = records

    def __iter__(self) -> Iterator[Record]:
        return self._records

    def __next__(self) -> Record:
        return next(self._records)

    def after(self, record: Record) -> Position:
        """The position right after ``record``; asked in file order (positions only move on)."""
        return Position(
            record.after_line, record.after_offset, self._lines.digest_at(record.after_offset)
        )


#: A line holding ``{"tuple": "…"}`` as ``export`` writes it, whose string has nothing JSON
#: escapes or refuses (a quote, a backslash, a control character): the string is the text
#: between the quotes, read without the JSON decoder (a quarter of the reader's time).
_PLAIN_TUPLE_LINE = re.compile(r'\{"tuple": ?"([^"\\\x00-\x1f]*)"\}[ \t\r\n]*')


def _ndjson(lines: _Lines) -> Iterator[Record]:
    plain = _PLAIN_TUPLE_LINE.fullmatch
    for text in lines:
        number = lines.line - 1
        found = plain(text)
        if found is not None:
            try:
                item = parse_item("tuple", found[1])
            except ValueError as exc:
                raise DataFileError(lines.label, number, str(exc)) from None
            yield Record(item, number, lines.line, lines.offset)
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError(lines.label, number, f"not a JSON object: {exc.msg}") from None
        if not isinstance(obj, dict) or len(obj) != 1 or next(iter(obj)) not in _KINDS:
            raise DataFileError(
                lines.label,
                number,
                f"expected an object with one key, one of {', '.join(_KINDS)}, e.g. "
                '{"tuple": "doc:1#viewer@user:1"}',
            )
        ((kind, value),) = obj.items()
        try:
            item = parse_item(kind, value)
        except ValueError as exc:
            raise DataFileError(lines.label, number, str(exc)) from None
        yield Record(item, number, lines.line, lines.offset)


def _csv(lines: _Lines, *, header: bool) -> Iterator[Record]:
    rows = csv.reader(lines, strict=True)
    first = True
    while True:
        number = lines.line
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataFileError(lines.label, number, f"malformed CSV: {exc}") from None
        if header and first:
            first = False
            if [cell.strip().lower() for cell in row] != CSV_HEADER:
                raise DataFileError(
                    lines.label, number, f"expected the header `kind,value`, got {','.join(row)!r}"
                )
            continue
        if not row or row == [""]:
            continue
        if len(row) != 2:
            raise DataFileError(
                lines.label, number, f"expected 2 columns (kind,value), got {len(row)}"
            )
        try:
            item = parse_item(row[0].strip(), row[1])
        except ValueError as exc:
            raise DataFileError(lines.label, number, str(exc)) from None
        yield Record(item, number, lines.line, lines.offset)


def read_records(
    handle: IO[bytes], fmt: Format, *, label: str, start: Position | None = None
) -> Records:
    """The records of a binary stream positioned at ``start`` (the beginning by default); a CSV
    header is expected only at the beginning. Raises DataFileError at the first bad record."""
    start = start or Position()
    sha = hashlib.sha256()
    if start.offset:
        # The caller has checked the prefix; hash it again so later positions cover the file.
        sha = _prefix_sha(handle, start.offset)
        if sha is None or sha.hexdigest() != start.digest:
            raise TransferError(
                f"{label} changed before line {start.line} since that position was recorded"
            )
    lines = _Lines(handle, label, start.line, start.offset, sha)
    if fmt is Format.CSV:
        return Records(lines, _csv(lines, header=start.offset == 0))
    return Records(lines, _ndjson(lines))


def _prefix_sha(handle: IO[bytes], size: int) -> Any:
    """The SHA-256 of the next ``size`` bytes, or None if the stream is shorter."""
    sha = hashlib.sha256()
    left = size
    while left:
        chunk = handle.read(min(left, 1 << 20))
        if not chunk:
            return None
        sha.update(chunk)
        left -= len(chunk)
    return sha


# -- import -------------------------------------------------------------------------------------


@dataclass(slots=True)
class ImportState:
    """What ``FILE.import-state`` holds: everything before ``position`` is written."""

    tenant: str
    format: str
    position: Position = field(default_factory=Position)
    snap_token: str = ""
    tuples: int = 0
    attributes: int = 0
    writes: int = 0
    relations: int = 0

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps({"version": STATE_VERSION, **data}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ImportState:
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop("version", None) != STATE_VERSION:
            raise ValueError("unknown state file version")
        position = Position(**data.pop("position"))
        state = cls(position=position, **data)
        if not (isinstance(position.line, int) and isinstance(position.offset, int)):
            raise ValueError("bad position")
        return state


def state_path(path: str) -> Path:
    return Path(path + STATE_SUFFIX)


def load_state(path: Path) -> ImportState | None:
    """The saved state, or None when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TransferError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return ImportState.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise TransferError(f"{path} is not an import state file ({exc}); delete it") from exc


def save_state(path: Path, state: ImportState) -> None:
    """Replace the state file atomically, so a crash leaves the old state or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(state.to_json())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True, slots=True)
class ImportResult:
    state: ImportState
    #: The line this run started at (1 unless resumed).
    started_at: int


def _rejected(label: str, batch: list[Record], exc: ClientError) -> DataFileError | None:
    """The record a 400 from data/write names (``tuples[3]``), at its line."""
    if exc.status != 400:
        return None
    tuples = [r for r in batch if isinstance(r.item, Tuple)]
    attributes = [r for r in batch if not isinstance(r.item, Tuple)]
    for v in exc.violations:
        found = _ITEM_FIELD.match(v.field)
        if found is None:
            continue
        records = tuples if found[1] == "tuples" else attributes
        index = int(found[2])
        if index < len(records):
            return DataFileError(label, records[index].line, v.description or exc.message)
    return None


def _restore_part(batch: list[Record]) -> dict[str, Any]:
    part: dict[str, Any] = {"types": [], "relations": [], "object_types": []}
    for record in batch:
        assert isinstance(record.item, Part)
        field_name = LAYER[record.item.kind]
        if field_name == "settings":
            part["settings"] = record.item.value
        else:
            part[field_name].append(record.item.value)
    return part


def _open_pairs(batch: list[Record]) -> bool:
    """Whether a relation (or relationship type) in ``batch`` names a pair (an inverse) that is
    not in it yet: a restore must not split one, whose other half comes on the next line."""
    ids: set[str] = set()
    wanted: set[str] = set()
    for record in batch:
        item = record.item
        if isinstance(item, Part) and isinstance(item.value, dict) and item.kind != SCHEMA:
            ids.add(str(item.value.get("id")))
            other = item.value.get("pair_id" if item.kind == "relation" else "inverse_id")
            if isinstance(other, str):
                wanted.add(other)
    return bool(wanted - ids)


def _rejected_part(label: str, batch: list[Record], exc: ClientError) -> DataFileError | None:
    """The record a 400 from relations/restore names (``relations.3``), at its line."""
    if exc.status != 400:
        return None
    for v in exc.violations:
        found = re.match(r"^(types|relations)\.(\d+)", v.field)
        if found is None:
            continue
        kind = "relationship_type" if found[1] == "types" else "relation"
        records = [r for r in batch if isinstance(r.item, Part) and r.item.kind == kind]
        index = int(found[2])
        if index < len(records):
            return DataFileError(label, records[index].line, v.description or exc.message)
    return None


@dataclass(slots=True)
class _Sent:
    """A data batch on its way: its records, what it writes, and the write's outcome."""

    records: list[Record]
    tuples: int
    attributes: int
    keys: set[AttributeKey]
    outcome: Future[str]


def run_import(
    client: ImportTarget,
    path: str,
    fmt: Format,
    *,
    batch_size: int,
    resume: bool,
    progress: Callable[[int], None] | None = None,
    layer: LayerTarget | None = None,
    in_flight: int = 1,
) -> ImportResult:
    """Import ``path`` in batches of ``batch_size``; see the module docstring. ``layer`` restores
    the relations layer's records (a file with some and no ``layer`` is a TransferError).

    Up to ``in_flight`` data batches are sent at once (each still one atomic write); the state
    file only ever moves past a batch once it and every batch before it are acknowledged, a batch
    writing an attribute waits for any earlier batch writing the same attribute (the later value
    wins, as in the file), and a schema or relations-layer batch waits for every batch before it.

    Raises DataFileError for a bad record (after writing every record before it), TransferError
    when the state file does not fit, and ClientError when the server refuses or is unreachable;
    in every case the state file says where a ``--resume`` continues.
    """
    where = state_path(path)
    state = load_state(where) if resume else None
    if state is not None:
        if state.tenant != client.tenant:
            raise TransferError(
                f"{where} is an import into tenant {state.tenant!r}; resume with --tenant "
                f"{state.tenant} or delete it"
            )
        if state.format != fmt.value:
            raise TransferError(f"{where} is an import of {state.format}, not {fmt.value}")
    else:
        state = ImportState(tenant=client.tenant, format=fmt.value)
    started_at = state.position.line
    batch: list[Record] = []
    batch_bytes = 0
    sent: deque[_Sent] = deque()
    concurrent = False  # whether two data batches were ever in flight together
    pool = ThreadPoolExecutor(max(1, in_flight), thread_name_prefix="import")

    def written(
        records: list[Record],
        token: str,
        *,
        tuples: int = 0,
        attributes: int = 0,
        relations: int = 0,
        writes: int = 1,
    ) -> None:
        before = state.position.offset
        state.position = reader.after(records[-1])
        state.snap_token = token
        state.tuples += tuples
        state.attributes += attributes
        state.relations += relations
        state.writes += writes
        save_state(where, state)
        if progress is not None:
            progress(state.position.offset - before)

    def settle_oldest() -> None:
        """Wait for the oldest data batch in flight and record it; on failure wait for the rest
        (they may land: writes are idempotent, a resume sends them again) and raise."""
        head = sent.popleft()
        try:
            token = head.outcome.result()
        except ClientError as exc:
            drain_quietly()
            rejected = _rejected(path, head.records, exc)
            if rejected is not None:
                raise rejected from exc
            raise
        except BaseException:
            drain_quietly()
            raise
        written(head.records, token, tuples=head.tuples, attributes=head.attributes)

    def drain_quietly() -> None:
        while sent:
            with contextlib.suppress(BaseException):
                sent.popleft().outcome.result()

    def settle(keys: set[AttributeKey] | None = None) -> None:
        """Record every batch in flight (``keys``: only while one writes one of those keys)."""
        while sent and (keys is None or any(keys & s.keys for s in sent)):
            settle_oldest()

    def flush() -> None:
        nonlocal batch_bytes, concurrent
        batch_bytes = 0
        if not batch:
            return
        records = batch.copy()
        batch.clear()
        first = records[0].item
        if isinstance(first, Part):
            settle()
        if isinstance(first, Part) and first.kind == SCHEMA:
            assert isinstance(first.value, str)
            if _current_schema(client) == first.value:
                written(records, state.snap_token, writes=0)  # the tenant has it already
            else:
                client.write_schema(first.value)
                written(records, client.head_token())
            return
        if isinstance(first, Part):
            if layer is None:
                raise TransferError(
                    f"{path}:{records[0].line}: the relations layer's records need the "
                    "relations restore client"
                )
            part = _restore_part(records)
            try:
                token = layer.restore(part)
            except ClientError as exc:
                rejected = _rejected_part(path, records, exc)
                if rejected is not None:
                    raise rejected from exc
                raise
            written(records, token, relations=len(part["relations"]))
            return
        tuples = [r.item for r in records if isinstance(r.item, Tuple)]
        attributes = [r.item for r in records if isinstance(r.item, Attribute)]
        keys = {a.key for a in attributes}
        settle(keys)  # an earlier value of the same attribute lands first
        while len(sent) >= max(1, in_flight):
            settle_oldest()
        concurrent = concurrent or bool(sent)
        outcome = pool.submit(client.write_data, tuples, attributes)
        sent.append(_Sent(records, len(tuples), len(attributes), keys, outcome))

    def group(item: Item) -> str:
        if isinstance(item, Part):
            return SCHEMA if item.kind == SCHEMA else "layer"
        return "data"

    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; open errors are reported
    except OSError as exc:
        raise TransferError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with handle, _shutting(pool, sent):
        if progress is not None and state.position.offset:
            progress(state.position.offset)
        try:
            reader = read_records(handle, fmt, label=path, start=state.position)
            for record in reader:
                if batch and (
                    group(batch[0].item) != group(record.item) or group(record.item) == SCHEMA
                ):
                    flush()
                batch.append(record)
                if isinstance(record.item, Part) and record.item.kind != SCHEMA:
                    batch_bytes += len(_json(record.item.value))
                    full = len(batch) >= batch_size or batch_bytes >= _RESTORE_BYTES
                    if full and not _open_pairs(batch):
                        flush()
                elif len(batch) >= batch_size:
                    flush()
        except DataFileError:
            flush()  # everything before the bad record goes in; the state points at it
            settle()
            raise
        except TransferError as exc:
            raise TransferError(f"{exc}; cannot resume: delete {where} to start over") from exc
        flush()
        settle()
        if concurrent:
            # Batches in flight together commit in any order: the last one's token may not
            # cover an earlier one; the head's does.
            state.snap_token = client.head_token()
    where.unlink(missing_ok=True)
    return ImportResult(state, started_at)


@contextlib.contextmanager
def _shutting(pool: ThreadPoolExecutor, sent: deque[_Sent]) -> Iterator[None]:
    """Stop the writer threads on the way out; on an error, after the writes in flight."""
    try:
        yield
    finally:
        for s in sent:
            s.outcome.cancel()
        pool.shutdown(wait=True)


def _current_schema(client: ImportTarget | Client) -> str | None:
    """The tenant's current schema text, or None when it has none."""
    try:
        return client.read_schema().text
    except ClientError as exc:
        if exc.status == 404:
            return None
        raise


# -- export -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportResult:
    tuples: int
    attributes: int
    snap_token: str
    relations: int = 0
    types: int = 0
    schema: bool = False


def run_export(
    client: Client,
    out: IO[str],
    fmt: Format,
    *,
    snap_token: str = "",
    layer: RelationsBackupClient | None = None,
) -> ExportResult:
    """Write the schema, every tuple, then every attribute, of the client's tenant to ``out``,
    then (with ``layer``) its relations layer.

    Everything is read at one snapshot: ``snap_token``, or else the one the relations layer was
    read at (with ``layer``), or else the newest when the export starts; so writes landing
    meanwhile are never partly included. The schema is the current one.
    """
    dumped: dict[str, Any] | None = None
    if layer is not None:
        dumped, layer_token = layer.backup()
        snap_token = snap_token or layer_token
    snap_token = snap_token or client.head_token()
    writer = Writer(out, fmt)
    schema = _current_schema(client)
    if schema is not None:
        writer.write(Part(SCHEMA, schema))
    tuples = attributes = 0
    for t in client.read_tuples(TupleFilter(), snap_token=snap_token):
        writer.write(t)
        tuples += 1
    for a in client.read_attributes(AttributeFilter(), snap_token=snap_token):
        writer.write(a)
        attributes += 1
    types = relations = 0
    if dumped is not None:
        if isinstance(dumped.get("settings"), dict):
            writer.write(Part("relations_settings", dumped["settings"]))
        for rt in dumped.get("types") or ():
            writer.write(Part("relationship_type", rt))
            types += 1
        for row in dumped.get("relations") or ():
            writer.write(Part("relation", row))
            relations += 1
        for created in dumped.get("object_types") or ():
            writer.write(Part("custom_object_type", created))
    return ExportResult(tuples, attributes, snap_token, relations, types, schema is not None)
