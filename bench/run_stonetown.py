"""Stonetown's adapter for the team's shared benchmark harness (../shared/bench/common.py).

Measures the product configuration in process, on the same dataset and with the same rules as
the anchors (pemba, SpiceDB) beside it in ../shared/bench, so its JSON line can be compared
with theirs from the same run:

* **load_s**: every tuple of ``data/<SIZE>/tuples.jsonl`` turned into ``storage.base.Tuple``
  and written through ``LevelDBStore.write`` in writes of ``max_write_items`` (1000), then
  ``Engine(store)`` built. The store lives in a fresh temporary directory (``$TMPDIR``),
  removed afterwards, with the store's defaults except ``gc_interval=None`` (no GC thread).
  The schema (../shared/bench/model.perm) is written before the timer starts. Tuples go
  through the ``Store``, not the API, so they are not validated against the schema.
* **checks**: ``Engine.check(tenant, Entity, permission, Subject("user", id)).allowed``, one
  call at a time, default ``EngineConfig`` (its caches are the engine's defaults, so compare
  ``first_pass_*`` too: the harness repeats the check list until ``--min-check-s``).
* **lookup**: ``Engine.lookup_entity(tenant, "document", "view", user)``, every page (one page
  of up to 1,000,000 ids, so normally one call per query).

* **--database-url URL** [**--max-staleness S**] [**--db-spin-us U**]: the same on the
  PostgreSQL store (``PostgresStore(URL, gc_interval=None, max_staleness=S,
  spin_seconds=U/1e6)``, the database migrated first; U defaults to the store's default)
  instead of LevelDB, in a tenant of its own (``bench-<random>``), deleted afterwards. The
  first pass is what a fleet replica sees: its engine caches start empty, and every read is a
  query. The JSON line adds ``first_pass_round_trips_per_check``: the store's read statements
  over the first pass (each one round trip), per check.

Run it alone on the machine, right after the anchors (``make bench-anchors SIZE=S``)::

    make bench-engine SIZE=S          # or SIZE=M; BENCH_DATA=/tmp/benchdata by default
    .venv/bin/python bench/run_stonetown.py --size S --data /tmp/benchdata [--checks 50 ...]

Every option of the harness's ``parse_args`` applies (``--checks``, ``--lookups``,
``--check-budget``, ``--min-check-s``, ``--no-lookup``, ...). The harness is imported from
../shared/bench beside the repository, or from ``$STONETOWN_SHARED_BENCH``; its dataset is
generated with ``python3 ../shared/bench/dataset.py --size S --out /tmp/benchdata`` (the Makefile
target does that when it is missing), since ../shared is read-only.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.engine import Engine, EngineConfig
from engine.types import Entity, RequestOptions
from storage.base import Changes, Store, Subject, Tuple
from storage.leveldb import LevelDBStore
from storage.postgres.database import DEFAULT_SPIN_SECONDS

SHARED_BENCH = Path(
    os.environ.get(
        "STONETOWN_SHARED_BENCH", Path(__file__).resolve().parents[2] / "shared" / "bench"
    )
)
TENANT = "t1"  # exists in every new store (the LevelDB run's tenant)
LOOKUP_PAGE_SIZE = 1_000_000  # above any size's document count, so one page per query


def import_harness() -> Any:
    """The shared harness module ``common``, imported from SHARED_BENCH without writing there."""
    if not (SHARED_BENCH / "common.py").is_file():
        sys.exit(
            f"no benchmark harness at {SHARED_BENCH}/common.py: the team's shared bench is read "
            "from ../shared/bench beside the repository; set STONETOWN_SHARED_BENCH to its "
            "directory if it lives elsewhere"
        )
    sys.dont_write_bytecode = True  # leave ../shared untouched
    sys.path.insert(0, str(SHARED_BENCH))
    import common  # type: ignore[import-not-found]  # noqa: PLC0415 (found only at run time)

    return common


def notes(store: Store, tenant: str, where: str) -> str:
    config = EngineConfig()
    return (
        f"{where} (defaults, gc_interval=None), tenant {tenant}; "
        f"tuples written through Store.write in batches of {store.max_write_items} "
        "(not validated against the schema); schema write outside load_s, Engine(store) "
        "and its schema compile inside it; default EngineConfig "
        f"(check cache {config.check_cache_entries:,} entries, "
        f"read cache {config.read_cache_entries:,})"
    )


def run(
    common: Any,
    args: Any,
    store: Store,
    *,
    tenant: str = TENANT,
    where: str = "LevelDB store in a temp dir",
    name: str = "stonetown",
    round_trips: Callable[[], int] | None = None,
) -> None:
    b = common.Bench(name, "stonetown", args, notes=notes(store, tenant, where))
    store.write_schema(tenant, (SHARED_BENCH / "model.perm").read_text())
    raw: list[tuple[str, str, str, str, str, str]] = b.ds.tuples

    written = [""]  # the load's last snap token

    def load() -> Engine:
        # Converted batch by batch: the objects of one batch die before the next, rather
        # than a whole dataset of them aging into the collector's oldest generation.
        step = store.max_write_items
        for i in range(0, len(raw), step):
            batch = [Tuple(*t) for t in raw[i : i + step]]
            written[0] = store.write(tenant, Changes(write_tuples=batch))
        engine = Engine(store)
        engine.compiled(tenant)  # compile the schema now, as a server does when it starts
        return engine

    engine: Engine = b.timed_load(load)

    # With --at-load-token every check names the load's snap token, as a client that wrote the
    # data asks to read its writes; without, each asks for the latest revision. On PostgreSQL
    # either way costs a round trip for the tenant's state per check (which also reads the
    # checked entity, when the reader does not hold it yet).
    options = RequestOptions(snap_token=written[0]) if args.at_load_token else RequestOptions()

    def check(entity_type: str, entity_id: str, permission: str, user_id: str) -> bool:
        result = engine.check(
            tenant,
            Entity(entity_type, entity_id),
            permission,
            Subject("user", user_id),
            options=options,
        )
        return result.allowed

    def lookup(user_id: str) -> Iterable[str]:
        ids: list[str] = []
        cursor = ""
        while True:
            page = engine.lookup_entity(
                tenant,
                "document",
                "view",
                Subject("user", user_id),
                page_size=LOOKUP_PAGE_SIZE,
                cursor=cursor,
            )
            ids.extend(page.ids)
            cursor = page.cursor
            if not cursor:
                return ids

    if round_trips is None:
        b.run_checks(check)
    else:
        # The store's read statements over the first pass, per check (each is a round trip).
        first = len(b.ds.checks[: args.checks] if args.checks else b.ds.checks)
        asked = [0]
        counted = [0]

        def counting(entity_type: str, entity_id: str, permission: str, user_id: str) -> bool:
            if asked[0] == 0:
                counted[0] = -round_trips()
            allowed = check(entity_type, entity_id, permission, user_id)
            asked[0] += 1
            if asked[0] == first:
                counted[0] += round_trips()
            return allowed

        b.run_checks(counting)
        b.result["first_pass_round_trips_per_check"] = round(counted[0] / first, 3)
    try:
        b.run_lookups(lookup, "Engine.lookup_entity")
    except NotImplementedError as exc:  # the harness stops on a lookup error; say why instead
        b.no_lookup(f"Engine.lookup_entity raised NotImplementedError {exc}".rstrip())
    b.emit()


def run_postgres(common: Any, args: Any) -> None:
    """The bench on PostgreSQL at ``args.database_url``, in a tenant of its own."""
    from storage.postgres import PostgresStore, migrate  # noqa: PLC0415 (only when asked for)

    migrate(args.database_url)
    tenant = f"bench-{secrets.token_hex(4)}"
    spin = args.db_spin_us / 1e6
    with PostgresStore(
        args.database_url, gc_interval=None, max_staleness=args.max_staleness, spin_seconds=spin
    ) as store:
        store.create_tenant(tenant)
        try:
            run(
                common,
                args,
                store,
                tenant=tenant,
                where=(
                    f"PostgreSQL store (PostgresStore, max_staleness={args.max_staleness:g}, "
                    f"spin_seconds={spin:g})"
                ),
                name="stonetown-postgres",
                round_trips=lambda: store.reads,
            )
        finally:
            store.delete_tenant(tenant)


def main() -> None:
    common = import_harness()

    def postgres_options(ap: Any) -> None:
        ap.add_argument(
            "--database-url",
            default="",
            help="run on the PostgreSQL store at this URL instead of LevelDB",
        )
        ap.add_argument(
            "--at-load-token",
            action="store_true",
            help="ask every check at the load's last snap token (read-your-writes) instead of "
            "at the latest revision",
        )
        ap.add_argument(
            "--max-staleness",
            type=float,
            default=0.0,
            help="PostgreSQL: reuse a tenant's head for this many seconds (0: read it each time)",
        )
        ap.add_argument(
            "--db-spin-us",
            type=float,
            default=DEFAULT_SPIN_SECONDS * 1e6,
            help="PostgreSQL: µs a read polls for its answer before sleeping (0: sleep at once)",
        )

    args = common.parse_args(postgres_options)
    where = Path(args.data) / args.size
    if not (where / "tuples.jsonl").is_file():
        sys.exit(
            f"no dataset in {where}: run `python3 -B {SHARED_BENCH / 'dataset.py'} --size "
            f"{args.size} --out {args.data}` (../shared is read-only: pass --data to a "
            "writable directory, e.g. --data /tmp/benchdata)"
        )
    if args.database_url:
        run_postgres(common, args)
        return
    with (
        tempfile.TemporaryDirectory(prefix="stonetown-bench-") as tmp,
        LevelDBStore(Path(tmp) / "db", gc_interval=None) as store,
    ):
        run(common, args, store)


if __name__ == "__main__":
    main()
