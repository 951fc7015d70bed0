"""The connection pool, and the one place psycopg's exceptions become storage errors.

Every query runs on a connection borrowed from a ``psycopg_pool.ConnectionPool`` for that query
(reads, in autocommit) or for one transaction (writes). Results come back in binary format:
``BYTEA`` as bytes, without hex decoding. psycopg prepares a statement on a connection once it
has run a few times there, so the engine's few query shapes are planned once per connection.

Failures, translated where they enter:

* no connection within ``timeout_seconds`` (the database is down, or the pool exhausted), a
  broken connection, or a statement running past ``timeout_seconds`` (``statement_timeout``):
  ``StoreUnavailable``, which the API answers with 503 and a retry hint. A read that fails on a
  broken connection (a database restart leaves every pooled connection broken) is retried on
  the next pooled connection (as many times as the pool has connections), so a restarted
  database serves the next request instead of failing it.
* a read, or a whole transaction, still running ``timeout_seconds`` and a grace after it started
  (a server that stopped answering, which never enforces its ``statement_timeout``): the
  ``Watchdog`` shuts its connection down, the pool discards it, and the call raises
  ``StoreUnavailable`` (not retried: a retry would only wait as long again). Transactions
  without a timeout (bulk deletes) are not watched.
* a serialisation failure or deadlock (CockroachDB's and YugabyteDB's optimistic transactions
  report conflicts so) is re-raised as is for the writer to retry the whole transaction.
* after ``close``: ``StoreClosed``.

Waiting for an answer: psycopg sleeps on the socket until the server's answer arrives, and waking
a sleeping thread costs tens of µs on a virtual machine's idle cores (measured here: a head read
142 µs sleeping, 99 µs polling; ``SELECT 1`` 106 µs against 76). So a read first polls its socket
for up to ``spin_seconds`` (`polled_first`), then sleeps as before. It polls only when no other
thread of the process is reading: a polling thread takes the GIL back between polls, which
would hold up the others (the server's event loop above all) when reads overlap. The cost is
CPU: up to ``spin_seconds`` of a core per read, where sleeping costs none.

The engine's hot reads (a tenant's head with the entities a check needs, a level of entities)
are `PreparedRead` statements: prepared once per connection under a name of their own and sent
by it through libpq, their parameters (bytea and bigint only) dumped by the statement's declared
types and their binary rows loaded by psycopg's own loaders. That skips the cursor's machinery
(the query's conversion, the prepared-statement bookkeeping, the generators around them): a
head read 75-78 µs through the kept cursor, 58-61 µs so (in a loop of its own, polling). Inside
a transaction they run through psycopg as any statement.

Connections get TCP keepalives and a ``tcp_user_timeout`` (``TCP_DEFAULTS``) unless the URL sets
them, so a peer gone silent is noticed on idle pooled connections too.

Concurrency: the pool is thread-safe; each thread holds its own connection while it uses one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import select
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from time import perf_counter
from typing import Any

import psycopg
from psycopg import abc as pg_abc
from psycopg import errors as pg_errors
from psycopg import generators, pq
from psycopg.abc import RV, PQGen
from psycopg.adapt import Transformer
from psycopg.conninfo import conninfo_to_dict
from psycopg.waiting import Ready, Wait
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from storage.errors import StorageError, StoreClosed, StoreUnavailable
from storage.postgres.watchdog import Watchdog

log = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[Any, ...]]
Row = tuple[Any, ...]


#: The parameter types a `PreparedRead` may declare: their OIDs and how each is sent (binary).
_BYTEA_OID = 17
_INT8_OID = 20
_INT8 = struct.Struct("!q").pack
_BINARY = pq.Format.BINARY
#: SQLSTATE invalid_sql_statement_name: executing a prepared statement the session lacks.
_NO_SUCH_STATEMENT = b"26000"


class PreparedRead:
    """A read statement run often enough to be worth its own path (see the module): its SQL
    with ``%s`` placeholders, as psycopg runs it inside a transaction, and the type of each
    parameter in order, ``b`` for bytea (bytes) and ``q`` for bigint (int), any of them None
    for NULL. Its name derives from its text, so a connection prepares it once whatever
    `PreparedRead` object names it."""

    __slots__ = ("formats", "ints", "name", "query", "sql", "types")

    def __init__(self, sql: str, types: str) -> None:
        if "%%" in sql:
            raise ValueError("a prepared read's text is sent as it is: no %% escapes")
        parts = sql.split("%s")
        if len(parts) - 1 != len(types) or set(types) - {"b", "q"}:
            raise ValueError(
                f"parameter types {types!r} (b: bytea, q: bigint) for {len(parts) - 1} placeholders"
            )
        self.sql = sql
        numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
        self.query = numbered.encode()
        self.name = b"stonetown_" + hashlib.blake2b(self.query, digest_size=10).hexdigest().encode()
        self.types = [_INT8_OID if t == "q" else _BYTEA_OID for t in types]
        #: The positions of the bigint parameters.
        self.ints = tuple(i for i, t in enumerate(types) if t == "q")
        self.formats = [_BINARY] * len(types)

    def dump(self, params: Sequence[Any]) -> list[Any]:
        """The parameters as libpq sends them: a bigint's 8 bytes, a bytea's own (a value of
        another type raises struct.error, or TypeError from libpq's send, rather than being
        sent as something else)."""
        if len(params) != len(self.types):
            raise TypeError(f"{len(self.types)} parameters expected, got {len(params)}")
        values = list(params)
        for i in self.ints:
            value = values[i]
            if value is not None:
                values[i] = _INT8(value)
        return values

    def __repr__(self) -> str:
        return f"PreparedRead({self.sql!r})"


class PooledConnection(psycopg.Connection[Row]):
    """A pooled connection that keeps one binary cursor for the autocommit reads run on it:
    psycopg's ``Connection.execute`` builds a cursor (and its adapters) per statement, about a
    quarter of a small read's client time. Only the thread that borrowed the connection uses
    it, so one cursor is enough; it goes when the connection closes.

    A read may also poll for its answer before sleeping on the socket (``spin``, see
    `Database`)."""

    _read_cursor: psycopg.Cursor[Row] | None = None
    #: While a read runs: seconds to poll for each answer before psycopg's wait sleeps.
    _spin = 0.0
    #: The names of the `PreparedRead` statements prepared on this connection.
    _prepared_reads: set[bytes] | None = None
    #: Loads the rows of `PreparedRead` results (made on first use).
    _loader: pg_abc.Transformer | None = None

    def read(self, sql: str | PreparedRead, params: Sequence[Any], spin: float = 0.0) -> list[Row]:
        """Every row of one statement, in binary format, on the kept cursor (a `PreparedRead`
        by its name, see `read_prepared`)."""
        if type(sql) is PreparedRead:
            return self.read_prepared(sql, params, spin)
        assert isinstance(sql, str)
        cursor = self._read_cursor
        if cursor is None:
            cursor = self._read_cursor = self.cursor(binary=True)
        self._spin = spin
        try:
            return cursor.execute(sql, params).fetchall()
        finally:
            self._spin = 0.0

    def read_prepared(
        self, statement: PreparedRead, params: Sequence[Any], spin: float = 0.0
    ) -> list[Row]:
        """Every row of ``statement`` (prepared on this connection first if it is not yet),
        sent by name through libpq, its answer awaited as psycopg awaits one. The connection
        must be in autocommit and idle, as a pooled read's is."""
        values = statement.dump(params)
        pgconn = self.pgconn
        self._spin = spin
        try:
            with self.lock:
                prepared = self._prepared_reads
                if prepared is None:
                    prepared = self._prepared_reads = set()
                for again in (False, True):
                    if statement.name not in prepared:
                        pgconn.send_prepare(statement.name, statement.query, statement.types)
                        results = self.wait(generators.execute(pgconn))
                        self._result(results, pq.ExecStatus.COMMAND_OK)
                        prepared.add(statement.name)
                    pgconn.send_query_prepared(statement.name, values, statement.formats, _BINARY)
                    results = self.wait(generators.execute(pgconn))
                    if again or not _statement_gone(results):
                        break
                    # Deallocated since (psycopg sends DEALLOCATE ALL after a ROLLBACK, a
                    # DROP or an ALTER on a connection where it prepared statements itself):
                    # prepared again, once.
                    prepared.discard(statement.name)
                result = self._result(results, pq.ExecStatus.TUPLES_OK)
        finally:
            self._spin = 0.0
        loader = self._loader
        if loader is None:
            loader = self._loader = Transformer(self)
        loader.set_pgresult(result)
        rows: list[Row] = loader.load_rows(0, result.ntuples, tuple)
        return rows

    def _result(self, results: list[pq.abc.PGresult], wanted: pq.ExecStatus) -> pq.abc.PGresult:
        """The one result of a statement, or the database's error raised as psycopg raises
        it."""
        for result in results:
            if result.status != wanted:
                if result.status == pq.ExecStatus.FATAL_ERROR:
                    raise pg_errors.error_from_result(result, encoding=self.info.encoding)
                raise psycopg.InterfaceError(f"unexpected result status: {result.status!r}")
        if len(results) != 1:
            raise psycopg.InterfaceError(f"{len(results)} results for one statement")
        return results[0]

    def wait(self, gen: PQGen[RV], *args: Any, **kwargs: Any) -> RV:
        spin = self._spin
        if spin:
            gen = polled_first(gen, self.pgconn.socket, spin)
        return super().wait(gen, *args, **kwargs)


def _statement_gone(results: list[pq.abc.PGresult]) -> bool:
    """Whether a prepared statement's execution failed for want of the statement."""
    return (
        len(results) == 1
        and results[0].status == pq.ExecStatus.FATAL_ERROR
        and results[0].error_field(pq.DiagnosticField.SQLSTATE) == _NO_SUCH_STATEMENT
    )


def polled_first(gen: PQGen[RV], fileno: int, seconds: float) -> PQGen[RV]:
    """``gen`` (psycopg's steps of one exchange with the server) with each wait for the answer
    first polled for, up to ``seconds``, without sleeping: what it would be handed when the
    answer is there in time, else the wait itself, for psycopg's waiting function."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    try:
        state = next(gen)
        while True:
            if state == Wait.R and _answered_within(poller, seconds):
                state = gen.send(Ready.R)
            else:
                state = gen.send((yield state))
    except StopIteration as stop:
        done: RV = stop.value
        return done


def _answered_within(poller: select.poll, seconds: float) -> bool:
    deadline = perf_counter() + seconds
    while not poller.poll(0):
        if perf_counter() >= deadline:
            return False
    return True


#: How long a read polls for its answer by default, and at most (a millisecond of a core).
DEFAULT_SPIN_SECONDS = 0.0001
MAX_SPIN_SECONDS = 0.001

#: Conflicts an optimistic database reports; the whole transaction may simply run again.
RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)

#: libpq's TCP settings where the URL sets none (over a unix socket libpq ignores them): probe
#: an idle connection after 10 s, every 5 s, give up after 3 unanswered probes; drop a
#: connection whose sent data stays unacknowledged for twice the timeout (``TCP_USER_TIMEOUT``,
#: in ms, filled in by ``tcp_settings``).
TCP_DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def tcp_settings(url: str, timeout_seconds: float) -> dict[str, int]:
    """``TCP_DEFAULTS`` and ``tcp_user_timeout`` but for what ``url`` sets itself (none for a
    URL that does not parse: connecting reports it, as it would without them)."""
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return {}
    wanted = {**TCP_DEFAULTS, "tcp_user_timeout": max(1000, math.ceil(2000 * timeout_seconds))}
    return {name: value for name, value in wanted.items() if name not in given}


def grace_of(timeout_seconds: float) -> float:
    """How long past its timeout a call may run before the watchdog ends it: room for the
    server's own ``statement_timeout`` to answer first."""
    return min(1.0, max(0.1, timeout_seconds / 4))


class Database:
    """A pool of connections to one database, with storage errors for psycopg's."""

    def __init__(
        self, url: str, *, pool_size: int, timeout_seconds: float, spin_seconds: float = 0.0
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        if not 0 <= spin_seconds <= MAX_SPIN_SECONDS:
            raise ValueError(
                f"spin_seconds must be 0 to {MAX_SPIN_SECONDS:g}, got {spin_seconds:g}"
            )
        self.timeout = timeout_seconds
        self.spin = spin_seconds
        #: The threads reading now (set.add and discard are atomic): a read spins only alone.
        self._readers: set[int] = set()
        self._closed = False
        self._pool_size = pool_size
        #: Read statements sent so far (counted without a lock: exact while one thread reads),
        #: for tests and benches that count round trips.
        self.reads = 0
        #: Of those, the reads that polled for their answer (alone in the process, see above).
        self.polled = 0
        self._pool: ConnectionPool[PooledConnection] = ConnectionPool(
            url,
            connection_class=PooledConnection,
            min_size=1,
            max_size=pool_size,
            timeout=timeout_seconds,
            open=False,
            name="stonetown",
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, math.ceil(timeout_seconds)),
                "options": f"-c statement_timeout={max(1, int(timeout_seconds * 1000))}",
                **tcp_settings(url, timeout_seconds),
            },
            # A failed connection attempt is not retried with a growing backoff: the next
            # request that needs a connection makes a new attempt, so the pool is back as soon
            # as the database is.
            reconnect_timeout=0,
        )
        self._watchdog = Watchdog(timeout_seconds, grace=grace_of(timeout_seconds))
        self._pool.open(wait=False)

    def close(self) -> None:
        self._closed = True
        self._pool.close()
        self._watchdog.close()

    # -- errors ------------------------------------------------------------------------------

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate psycopg's and the pool's exceptions raised inside (see the module)."""
        try:
            yield
        except RETRYABLE:
            raise
        except PoolClosed as exc:
            raise StoreClosed("the store is closed") from exc
        except PoolTimeout as exc:
            if self._closed:
                raise StoreClosed("the store is closed") from exc
            raise StoreUnavailable(
                f"no database connection within {self.timeout:g} s: the database is down, "
                "unreachable or overloaded; retry later"
            ) from exc
        except pg_errors.QueryCanceled as exc:
            raise StoreUnavailable(
                f"the database did not answer within {self.timeout:g} s; retry later"
            ) from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"the database connection failed: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"database error: {_first_line(exc)}") from exc

    # -- queries -----------------------------------------------------------------------------

    def rows(
        self, sql: str | PreparedRead, params: Sequence[Any] = (), conn: Connection | None = None
    ) -> list[Row]:
        """Every row of one read-only statement, on ``conn`` or a pooled connection."""
        if self._closed:
            raise StoreClosed("the store is closed")
        self.reads += 1
        if conn is None:
            try:
                return self._read(sql, params)  # the usual case, outside any block
            except Exception as exc:  # sorted out by _read_again
                failed = exc
            with self.errors():
                return self._read_again(sql, params, failed)
        with self.errors():
            text = sql.sql if type(sql) is PreparedRead else sql
            assert isinstance(text, str)
            return conn.execute(text, params, binary=True).fetchall()

    def _read_again(
        self, sql: str | PreparedRead, params: Sequence[Any], failed: Exception
    ) -> list[Row]:
        """A read whose first attempt raised ``failed``. A database restart breaks every pooled
        connection: each fails at once and is discarded, and the read goes on with the next (a
        new one in the end). Anything else is raised: a slow database, or none, is not retried
        (QueryCanceled, PoolTimeout, or the watchdog's StoreUnavailable), since a retry would
        only wait as long again."""
        for _ in range(self._pool_size):
            if not isinstance(failed, psycopg.OperationalError) or isinstance(
                failed, (pg_errors.QueryCanceled, PoolTimeout)
            ):
                raise failed
            log.warning("database read failed (%s); retrying", _first_line(failed))
            try:
                return self._read(sql, params)
            except Exception as exc:  # sorted out at the top of the loop
                failed = exc
        raise failed

    def _read(self, sql: str | PreparedRead, params: Sequence[Any]) -> list[Row]:
        # getconn/putconn rather than the pool's connection() block, which costs a read about
        # a third more: an autocommit read leaves no transaction to end, and putconn discards
        # a connection that broke (as one the watchdog shut down is).
        # The watchdog's arm/disarm inline rather than its guard block: a few µs less a read.
        pool = self._pool
        watchdog = self._watchdog
        readers = self._readers
        reader = threading.get_ident()
        conn = pool.getconn()
        readers.add(reader)
        try:
            spin = self.spin if len(readers) == 1 else 0.0
            if spin:
                self.polled += 1
            watchdog.arm(conn)
            try:
                found = conn.read(sql, params, spin)
            except psycopg.Error as exc:
                watchdog.failed(conn, exc)
                raise
            watchdog.disarm(conn)
            return found
        finally:
            readers.discard(reader)
            pool.putconn(conn)

    def one(
        self, sql: str | PreparedRead, params: Sequence[Any] = (), conn: Connection | None = None
    ) -> Row | None:
        found = self.rows(sql, params, conn)
        return found[0] if found else None

    @contextmanager
    def transaction(self, *, timeout: bool = True, pipeline: bool = True) -> Iterator[Connection]:
        """A connection inside one transaction, committed when the block ends (rolled back if
        it raises). Without ``timeout``, its statements may run as long as they need (bulk
        deletes).

        With ``pipeline``, statements whose results nobody reads (the last inserts of a write)
        travel with the COMMIT instead of costing a round trip each; a statement whose rows
        are fetched still waits for them. Without it, each statement's ``rowcount`` is known
        when ``execute`` returns.

        With ``timeout``, the watchdog ends the transaction (StoreUnavailable) when it has not
        committed ``timeout_seconds`` and a grace after it began."""
        if self._closed:
            raise StoreClosed("the store is closed")
        with (
            self.errors(),
            self._pool.connection() as conn,
            self._watchdog.guard(conn) if timeout else nullcontext(),
            conn.pipeline() if pipeline else nullcontext(),
            conn.transaction(),
        ):
            if not timeout:
                conn.execute("SET LOCAL statement_timeout = 0")
            yield conn

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers a trivial query."""
        self.rows("SELECT 1")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
