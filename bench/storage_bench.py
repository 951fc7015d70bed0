"""LevelDBStore bench: bulk load, point reads (latest and old snapshot), paginated reads, writes.

Everything goes through the public ``Store`` / ``SnapshotReader`` API of
``LevelDBStore(dir, gc_interval=None)``, one tenant, in a fresh temporary directory that is removed
afterwards. The dataset is fixed for a given ``--tuples``/``--seed``: the Google-Docs model of
../shared/bench/model.perm (user, group#member with nested groups, folder owner/viewer/parent,
document owner/editor/viewer/parent), ids like ``doc-012345``, shuffled. It is generated here,
sized by ``--tuples``, because ../shared/bench/dataset.py only has two fixed sizes (S 32,721 and
M 327,451 tuples); ``--shared M`` loads the team's M dataset instead (read from ../shared at
run time, never copied). The built-in dataset is shaped so that two filters match exactly
``tuples // 10`` (100,000 at the default):

* ``entity_type=group``: the index prefix covers exactly the matches;
* ``entity_type=document, relation=owner``: the prefix covers every document tuple (about 90%
  of the store) and the relation is checked per tuple, as a filter without entity ids must be.

Phases: (1) bulk load in writes of ``max_write_items`` tuples, batches built beforehand;
(2) point reads at the latest revision, one reader per 1000 calls like a request, each call
timed alone with ``perf_counter_ns``; (3) 10 writes of 500 deletes + 500 inserts on the same
(entity, relation) keys, then the same reads at the token taken after loading (and their results
compared with phase 2); (4) paginated walks of both filters with page sizes 1000 and 100, checked
to return every match exactly once; (5) single-tuple write latency, and in a separate small store
``sync=False`` against ``sync=True``. Python's GC stays on; the pre-generated dataset, and the
results kept for checking, are moved out of its reach with ``gc.freeze()`` between calls, so a
collection never walks the bench's own data (``--gc-off`` disables GC during timings; either is
reported). Targets: load >= 200,000 tuples/s, point read p50 < 20 us.

    .venv/bin/python bench/storage_bench.py [--tuples 1000000] [--dir PATH] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import importlib
import json
import os
import platform
import pstats
import random
import resource
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import plyvel

from storage.base import Changes, Tuple, TupleFilter
from storage.leveldb import LevelDBStore

TENANT = "t1"
LOAD_TARGET_PER_S = 200_000
READ_TARGET_P50_US = 20.0
READER_CALLS = 1000  # calls served by one reader, like one request
CHURN_WRITES = 10
SHARED = Path(os.environ.get("STONETOWN_SHARED", Path(__file__).resolve().parents[2] / "shared"))

# -- dataset ---------------------------------------------------------------------------------


def generate(n: int, seed: int) -> list[Tuple]:
    """``n`` distinct tuples of the docs model, shuffled; see the module docstring."""
    rng = random.Random(seed)
    users = [f"user-{i:06d}" for i in range(max(n // 20, 10))]
    groups = [f"group-{i:04d}" for i in range(max(n // 1000, 2))]
    folders = [f"folder-{i:05d}" for i in range(max(n // 100, 5))]
    docs = [f"doc-{i:06d}" for i in range(n // 10)]
    seen: set[Tuple] = set()
    out: list[Tuple] = []

    def add(t: Tuple) -> None:
        if t not in seen:
            seen.add(t)
            out.append(t)

    def grantee(p_group: float) -> tuple[str, str, str]:
        if rng.random() < p_group:
            return ("group", rng.choice(groups), "member")
        return ("user", rng.choice(users), "")

    # group#member: exactly n // 10, some groups nested in an earlier one (acyclic).
    for j in range(1, len(groups)):
        if rng.random() < 0.3:
            add(Tuple("group", groups[rng.randrange(j)], "member", "group", groups[j], "member"))
    while len(out) < n // 10:
        add(Tuple("group", rng.choice(groups), "member", "user", rng.choice(users)))
    # folders: five levels, each below a folder of the level above; an owner each, some viewers.
    levels: list[list[str]] = [[] for _ in range(5)]
    for i, f in enumerate(folders):
        level = i * 5 // len(folders)
        levels[level].append(f)
        add(Tuple("folder", f, "owner", "user", rng.choice(users)))
        if level:
            add(Tuple("folder", f, "parent", "folder", rng.choice(levels[level - 1])))
        if rng.random() < 0.2:
            add(Tuple("folder", f, "viewer", *grantee(0.5)))
    # documents: exactly one owner (so document#owner matches n // 10) and one parent folder...
    for d in docs:
        add(Tuple("document", d, "owner", "user", rng.choice(users)))
        add(Tuple("document", d, "parent", "folder", rng.choice(folders)))
    # ...then shares (viewer / editor, user or group#member) until there are n tuples.
    while len(out) < n:
        rel = "viewer" if rng.random() < 0.7 else "editor"
        add(Tuple("document", rng.choice(docs), rel, *grantee(0.2)))
    rng.shuffle(out)
    return out


def load_shared(size: str) -> list[Tuple]:
    """The team's dataset (../shared/bench/dataset.py), generated in memory, in its order."""
    where = SHARED / "bench"
    if not (where / "dataset.py").is_file():
        sys.exit(
            f"--shared needs {where}/dataset.py, which is absent: the team's shared material is "
            "read from ../shared beside the repo (or $STONETOWN_SHARED), never copied into it"
        )
    sys.path.insert(0, str(where))
    sys.dont_write_bytecode = True  # leave ../shared untouched
    try:
        dataset = importlib.import_module("dataset")
    finally:
        sys.path.remove(str(where))
        sys.dont_write_bytecode = False
    if size not in dataset.SIZES:
        sys.exit(f"--shared {size}: dataset.py offers sizes {', '.join(sorted(dataset.SIZES))}")
    return [Tuple(*t) for t in dataset.generate_tuples(size)]


# -- measuring -------------------------------------------------------------------------------


def summary_us(ns: list[int]) -> dict[str, float]:
    """p50 / p99 (nearest rank) / mean / max of per-call times, in microseconds."""
    ordered = sorted(ns)
    return {
        "n": len(ordered),
        "p50_us": round(statistics.median(ordered) / 1000, 2),
        "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000, 2),
        "mean_us": round(statistics.fmean(ordered) / 1000, 2),
        "max_us": round(ordered[-1] / 1000, 1),
    }


def timed_calls(
    store: LevelDBStore, token: str, args: list[Any], call: Callable[[Any, Any], Any]
) -> tuple[dict[str, float], list[Any]]:
    """``call(reader, arg)`` for each arg, a fresh reader every READER_CALLS calls; every call
    timed alone (reader creation timed apart). Returns the summary and the results."""
    clock = time.perf_counter_ns
    times: list[int] = []
    reader_ns: list[int] = []
    results: list[Any] = []
    for start in range(0, len(args), READER_CALLS):
        t0 = clock()
        reader = store.reader(TENANT, token)
        reader_ns.append(clock() - t0)
        for arg in args[start : start + READER_CALLS]:
            t0 = clock()
            result = call(reader, arg)
            times.append(clock() - t0)
            results.append(result)
        del reader
        gc.freeze()  # keep the results held here out of later collections' way
    stats = summary_us(times)
    stats["reader_create_us_p50"] = round(statistics.median(reader_ns) / 1000, 2)
    sizes = [len(r) for r in results if isinstance(r, list)]
    if sizes:
        stats["results_per_call_mean"] = round(statistics.fmean(sizes), 2)
    return stats, results


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@contextlib.contextmanager
def gc_off(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- phases ----------------------------------------------------------------------------------


def bulk_load(
    store: LevelDBStore, tuples: list[Tuple], *, profile: bool, no_gc: bool
) -> tuple[dict[str, Any], str]:
    size = store.max_write_items
    batches = [Changes(write_tuples=tuples[i : i + size]) for i in range(0, len(tuples), size)]
    batch_ns: list[int] = []
    clock = time.perf_counter_ns
    profiler = cProfile.Profile() if profile else None
    token = ""
    with gc_off(no_gc):
        if profiler:
            profiler.enable()
        start = clock()
        for changes in batches:
            t0 = clock()
            token = store.write(TENANT, changes)
            batch_ns.append(clock() - t0)
        total_ns = clock() - start
        if profiler:
            profiler.disable()
    if profiler:
        print("\ncProfile of the bulk load (top 20 by own time):", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(20)
    seconds = total_ns / 1e9
    batch = summary_us(batch_ns)
    step = max(1, -(-len(batches) // 10))
    return {
        "tuples": len(tuples),
        "writes": len(batches),
        "batch_size": size,
        "seconds": round(seconds, 3),
        "tuples_per_s": round(len(tuples) / seconds),
        "target_tuples_per_s": LOAD_TARGET_PER_S,
        "write_ms_p50": round(batch["p50_us"] / 1000, 2),
        "write_ms_p99": round(batch["p99_us"] / 1000, 2),
        "tuples_per_s_by_tenth": [
            round(sum(len(c.write_tuples) for c in batches[i : i + step]) / (sum(part) / 1e9))
            for i in range(0, len(batches), step)
            if (part := batch_ns[i : i + step])
        ],
        "profiled": profile,
    }, token


def point_reads(
    store: LevelDBStore, token: str, samples: dict[str, list[Any]], no_gc: bool
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    calls: dict[str, Callable[[Any, Any], Any]] = {
        "subjects": lambda r, k: r.subjects(*k),
        "has_tuple": lambda r, t: r.has_tuple(t),
        "has_tuple_absent": lambda r, t: r.has_tuple(t),
        "entity_ids": lambda r, k: list(r.entity_ids(*k)),
    }
    stats: dict[str, Any] = {}
    results: dict[str, list[Any]] = {}
    with gc_off(no_gc):
        for name, call in calls.items():
            stats[name], results[name] = timed_calls(store, token, samples[name], call)
    return stats, results


def churn(
    store: LevelDBStore, tuples: list[Tuple], rng: random.Random, no_gc: bool
) -> tuple[dict[str, Any], list[tuple[Tuple, Tuple]]]:
    """CHURN_WRITES writes, each deleting half a batch of existing tuples and inserting as many
    replacements on the same (entity, relation), so those keys hold a dead and a live version."""
    half = store.max_write_items // 2
    victims = rng.sample(tuples, CHURN_WRITES * half)
    pairs = [(t, t._replace(subject_id=f"{t.subject_id}~{i}")) for i, t in enumerate(victims)]
    batches = [
        Changes(
            write_tuples=[new for _, new in pairs[i : i + half]],
            delete_tuples=[old for old, _ in pairs[i : i + half]],
        )
        for i in range(0, len(pairs), half)
    ]
    clock = time.perf_counter_ns
    times = []
    with gc_off(no_gc):
        for changes in batches:
            t0 = clock()
            store.write(TENANT, changes)
            times.append(clock() - t0)
    s = summary_us(times)
    items = sum(c.size for c in batches)
    return {
        "writes": len(batches),
        "deletes": len(pairs),
        "inserts": len(pairs),
        "seconds": round(sum(times) / 1e9, 3),
        "items_per_s": round(items / (sum(times) / 1e9)),
        "write_ms_p50": round(s["p50_us"] / 1000, 2),
    }, pairs


def paginate(
    store: LevelDBStore, flt: TupleFilter, page_size: int, expected: int, no_gc: bool
) -> dict[str, Any]:
    """Walk every page (a fresh reader per page at the walk's token, like one request per page);
    check every match comes back exactly once."""
    token = store.head(TENANT)
    clock = time.perf_counter_ns
    page_ns: list[int] = []
    seen: list[Tuple] = []
    cursor = ""
    max_pages = expected // page_size + 2  # a walk that goes on longer would never end
    with gc_off(no_gc):
        while True:
            t0 = clock()
            page = store.reader(TENANT, token).read_tuples(flt, page_size=page_size, cursor=cursor)
            page_ns.append(clock() - t0)
            seen.extend(page.items)
            gc.freeze()
            if page.cursor and (page.cursor == cursor or len(page_ns) >= max_pages):
                raise AssertionError(
                    f"paginated walk of {flt} (page {page_size}) did not end: {len(page_ns)} "
                    f"pages, {len(seen):,} tuples ({len(set(seen)):,} distinct) for "
                    f"{expected:,} matches; page {len(page_ns)} starts at {page.items[:1]}"
                )
            cursor = page.cursor
            if not cursor:
                break
    total = sum(page_ns) / 1e9
    reader = store.reader(TENANT, token)
    iter_start = clock()
    iterated = sum(1 for _ in reader.iter_tuples(flt))
    iter_s = (clock() - iter_start) / 1e9
    distinct = len(set(seen))
    ok = len(seen) == distinct == iterated == expected and all(map(flt.matches, seen))
    if not ok:
        raise AssertionError(
            f"paginated walk of {flt} (page {page_size}) returned {len(seen)} tuples, "
            f"{distinct} distinct; iter_tuples gave {iterated}; the dataset has {expected}"
        )
    s = summary_us(page_ns)
    return {
        "page_size": page_size,
        "pages": len(page_ns),
        "tuples": len(seen),
        "seconds": round(total, 3),
        "tuples_per_s": round(len(seen) / total),
        "page_ms_p50": round(s["p50_us"] / 1000, 3),
        "page_ms_p99": round(s["p99_us"] / 1000, 3),
        "iter_tuples_per_s": round(iterated / iter_s),
        "exactly_once": ok,
    }


def single_writes(store: LevelDBStore, writes: list[Tuple], no_gc: bool) -> dict[str, float]:
    clock = time.perf_counter_ns
    times = []
    with gc_off(no_gc):
        for t in writes:
            changes = Changes(write_tuples=[t])
            t0 = clock()
            store.write(TENANT, changes)
            times.append(clock() - t0)
    return summary_us(times)


def sync_cost(root: Path, writes: int, no_gc: bool) -> dict[str, Any]:
    """The same single-tuple writes into a small fresh store, sync=False then sync=True."""
    path = root / "small"
    out: dict[str, Any] = {}
    for sync in (False, True):
        with LevelDBStore(path, gc_interval=None, sync=sync) as store:
            batch = [
                Tuple("document", f"doc-{i:06d}", "viewer", "user", f"user-{sync:d}-{i}")
                for i in range(writes)
            ]
            out[f"sync_{str(sync).lower()}"] = single_writes(store, batch, no_gc)
    return out


# -- report ----------------------------------------------------------------------------------


def environment(args: argparse.Namespace, store_dir: Path) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "plyvel": plyvel.__version__,
        "leveldb": getattr(plyvel, "__leveldb_version__", "unknown"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "dir": str(store_dir),
        "seed": args.seed,
        "dataset": f"shared {args.shared}" if args.shared else "generated",
        "python_gc": "disabled during timings"
        if args.gc_off
        else "enabled; the bench's own data (dataset, results) is gc.freeze()d between calls",
    }


def fmt_row(label: str, s: dict[str, Any]) -> str:
    extra = f"{s['results_per_call_mean']:>9.1f}" if "results_per_call_mean" in s else " " * 9
    return (
        f"  {label:<40}{s['p50_us']:>8.2f}{s['p99_us']:>8.2f}{s['mean_us']:>8.2f}"
        f"{s['max_us']:>9.0f}{extra}"
    )


def report(r: dict[str, Any]) -> str:
    env, load = r["environment"], r["load"]
    lines = [
        f"storage bench: LevelDBStore(gc_interval=None), {load['tuples']:,} tuples "
        f"({env['dataset']}, seed {env['seed']})",
        f"python {env['python']} ({env['implementation']}), plyvel {env['plyvel']}, "
        f"leveldb {env['leveldb']}, {env['machine']}",
        f"python gc: {env['python_gc']}; data dir {env['dir']}",
        "",
        f"1. bulk load         {load['tuples']:,} tuples in {load['writes']} writes of "
        f"{load['batch_size']}: {load['seconds']:.2f} s = {load['tuples_per_s']:,} tuples/s "
        f"(target >= {load['target_tuples_per_s']:,}) "
        f"{'OK' if load['tuples_per_s'] >= load['target_tuples_per_s'] else 'MISSED'}"
        + (" [under cProfile]" if load["profiled"] else ""),
        f"   per write         p50 {load['write_ms_p50']} ms, p99 {load['write_ms_p99']} ms; "
        "tuples/s by tenth of the load: "
        + " ".join(f"{v // 1000}k" for v in load["tuples_per_s_by_tenth"]),
        *textwrap.wrap(
            ", ".join(f"{k} {v:,}" for k, v in r["composition"].items()),
            width=100,
            initial_indent="   dataset           ",
            subsequent_indent=" " * 21,
        ),
        f"   data dir          {r['disk']['after_load_mb']} MB right after the load (the "
        "write-ahead log still holds the newest writes uncompressed),",
        f"{'':21}{r['disk']['at_end_mb']} MB at the end, {r['disk']['reopened_mb']} MB "
        f"after close + reopen = {r['disk']['bytes_per_version']} bytes per tuple version "
        f"({r['disk']['versions']:,} versions, change log included)",
        "",
        f"2./3. point reads, {READER_CALLS} calls per reader (us)"
        "            p50     p99    mean      max  results",
    ]
    labels = {
        "subjects": "subjects(et, eid, rel)",
        "has_tuple": "has_tuple (present)",
        "has_tuple_absent": "has_tuple (absent)",
        "entity_ids": "list(entity_ids(et, rel, subj))",
    }
    for when, title in (("latest", "latest"), ("old", "old token")):
        for name, label in labels.items():
            lines.append(fmt_row(f"{label} @{title}", r["reads"][when][name]))
    churned = r["reads"]["churned_keys"]
    lines.append(fmt_row("subjects, churned keys @latest", churned["latest"]))
    lines.append(fmt_row("subjects, churned keys @old token", churned["old"]))
    p50 = r["reads"]["latest"]["subjects"]["p50_us"]
    lines.append(
        f"  target p50 < {READ_TARGET_P50_US:g} us (subjects @latest): "
        f"{'OK' if p50 < READ_TARGET_P50_US else 'MISSED'}; "
        f"store.reader() p50 {r['reads']['latest']['subjects']['reader_create_us_p50']} us "
        "(each the first call after 1000 reads);\n  "
        f"old-token results equal the pre-churn ones: {r['reads']['old_matches_latest']}"
    )
    c = r["churn"]
    lines += [
        f"  churn between them: {c['writes']} writes of {c['deletes'] // c['writes']} deletes + "
        f"{c['inserts'] // c['writes']} inserts, {c['items_per_s']:,} items/s, "
        f"p50 {c['write_ms_p50']} ms per write",
        "",
        "4. paginated read_tuples walk (fresh reader per page)",
        "  filter                                   page  pages   tuples      s   tuples/s"
        "  page p50 ms  p99 ms  iter_tuples/s",
    ]
    for walk in r["pagination"]:
        lines.append(
            f"  {walk['filter']:<40}{walk['page_size']:>5}{walk['pages']:>7}{walk['tuples']:>9,}"
            f"{walk['seconds']:>7.2f}{walk['tuples_per_s']:>11,}{walk['page_ms_p50']:>13.3f}"
            f"{walk['page_ms_p99']:>8.3f}{walk['iter_tuples_per_s']:>15,}"
        )
    lines.append("  every walk returned each match exactly once (= iter_tuples count = dataset)")
    w = r["writes"]
    lines += [
        "",
        "5. single-tuple writes (us)                     p50     p99    mean      max",
        fmt_row(f"big store, sync=False ({w['big_sync_false']['n']})", w["big_sync_false"]),
        fmt_row(
            f"small store, sync=False ({w['small']['sync_false']['n']})", w["small"]["sync_false"]
        ),
        fmt_row(
            f"small store, sync=True ({w['small']['sync_true']['n']})", w["small"]["sync_true"]
        ),
        "",
        f"peak RSS {r['peak_rss_mb']} MB; wall {r['wall_s']} s (dataset generation "
        f"{r['generate_s']} s, not in any timing)",
    ]
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    wall = time.perf_counter()
    rng = random.Random(args.seed + 1)  # queries: independent of the dataset's stream
    progress("generating the dataset")
    t0 = time.perf_counter()
    tuples = load_shared(args.shared) if args.shared else generate(args.tuples, args.seed)
    filters = [
        TupleFilter(entity_type="group"),
        TupleFilter(entity_type="document", relation="owner"),
    ]
    expected = [sum(map(flt.matches, tuples)) for flt in filters]
    composition = Counter(
        f"{t.entity_type}#{t.relation}@{t.subject_type}{'#' if t.subject_relation else ''}"
        f"{t.subject_relation}"
        for t in tuples
    )
    q = min(args.queries, len(tuples))
    latest_samples: dict[str, list[Any]] = {
        "subjects": [t[:3] for t in rng.sample(tuples, q)],
        "has_tuple": rng.sample(tuples, q),
        "has_tuple_absent": [
            t._replace(subject_id=f"{t.subject_id}-absent") for t in rng.sample(tuples, q)
        ],
        "entity_ids": [(t.entity_type, t.relation, t.subject) for t in rng.sample(tuples, q)],
    }
    n_single = args.single_writes
    single = [
        Tuple("document", f"doc-new-{i:06d}", "viewer", "user", f"user-{i:06d}")
        for i in range(n_single)
    ]
    generate_s = round(time.perf_counter() - t0, 2)
    gc.collect()
    gc.freeze()

    store_dir = root / "store"
    result: dict[str, Any] = {
        "environment": environment(args, store_dir),
        "composition": dict(composition.most_common()),
    }
    with LevelDBStore(store_dir, gc_interval=None) as store:
        progress(f"loading {len(tuples):,} tuples")
        result["load"], loaded = bulk_load(store, tuples, profile=args.profile, no_gc=args.gc_off)
        after_load = dir_bytes(store_dir)

        progress("point reads at the latest revision")
        latest, latest_results = point_reads(store, loaded, latest_samples, args.gc_off)
        if not all(latest_results["has_tuple"]) or any(latest_results["has_tuple_absent"]):
            raise AssertionError("has_tuple answered wrongly on a loaded or an absent tuple")
        if not all(latest_results["subjects"]) or not all(latest_results["entity_ids"]):
            raise AssertionError("a point read of an existing key came back empty")

        progress("churn, then point reads at the token taken after loading")
        result["churn"], pairs = churn(store, tuples, rng, args.gc_off)
        old, old_results = point_reads(store, loaded, latest_samples, args.gc_off)
        keys = [old_t[:3] for old_t, _ in pairs]
        with gc_off(args.gc_off):
            churned_latest, now = timed_calls(store, "", keys, lambda r, k: r.subjects(*k))
            churned_old, then = timed_calls(store, loaded, keys, lambda r, k: r.subjects(*k))
        for (old_t, new_t), subjects_now, subjects_then in zip(pairs, now, then, strict=True):
            if old_t.subject not in subjects_then or new_t.subject in subjects_then:
                raise AssertionError(f"old-token read of {old_t} does not show the old state")
            if old_t.subject in subjects_now or new_t.subject not in subjects_now:
                raise AssertionError(f"latest read of {new_t} does not show the churn")
        result["reads"] = {
            "latest": latest,
            "old": old,
            "old_matches_latest": old_results == latest_results,
            "churned_keys": {"latest": churned_latest, "old": churned_old},
        }
        if not result["reads"]["old_matches_latest"]:
            raise AssertionError("reads at the old token differ from the same reads before churn")

        result["pagination"] = []
        for flt, count in zip(filters, expected, strict=True):
            for page_size in (1000, 100):
                progress(f"paginating {count:,} tuples, page size {page_size}")
                walk = paginate(store, flt, page_size, count, args.gc_off)
                label = ", ".join(
                    f"{k}={v!r}"
                    for k, v in (("entity_type", flt.entity_type), ("relation", flt.relation))
                    if v
                )
                result["pagination"].append({"filter": label, "matches": count, **walk})

        progress(f"{n_single:,} single-tuple writes")
        big = single_writes(store, single, args.gc_off)
        at_end = dir_bytes(store_dir)
    with LevelDBStore(store_dir, gc_interval=None):
        reopened = dir_bytes(store_dir)
    progress(f"small store: {args.sync_writes} writes with sync=False, then sync=True")
    result["writes"] = {
        "big_sync_false": big,
        "small": sync_cost(root, args.sync_writes, args.gc_off),
    }
    versions = len(tuples) + result["churn"]["inserts"] + n_single
    result["disk"] = {
        "after_load_mb": round(after_load / 2**20, 1),
        "versions": versions,
        "bytes_per_version": round(reopened / versions, 1),
        "at_end_mb": round(at_end / 2**20, 1),
        "reopened_mb": round(reopened / 2**20, 1),
    }
    result["generate_s"] = generate_s
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuples", type=int, default=1_000_000, help="dataset size")
    parser.add_argument(
        "--dir", help="parent of the temporary store directory (default: the system temp dir)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=20_000, help="calls per point-read kind")
    parser.add_argument("--single-writes", type=int, default=5_000)
    parser.add_argument("--sync-writes", type=int, default=300)
    parser.add_argument(
        "--shared", metavar="SIZE", help="load ../shared/bench/dataset.py's S or M instead"
    )
    parser.add_argument("--gc-off", action="store_true", help="gc.disable() during timings")
    parser.add_argument("--profile", action="store_true", help="cProfile the load (to stderr)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.tuples < 10_000 and not args.shared:
        parser.error("--tuples must be at least 10000")
    root = Path(tempfile.mkdtemp(prefix="storage-bench-", dir=args.dir))
    try:
        result = run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=1) if args.json else report(result))


if __name__ == "__main__":
    main()
