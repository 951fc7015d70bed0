"""The deepest checks the engine allows, run in a process of their own by tests/test_compiled.py:
``python -m tests.compiled_checks [raised]`` prints one JSON document.

What it prints: whether the compiled modules loaded compiled, and for each schema (nested
groups, folders, and a wide and deep schema), on the main thread and on a worker thread
(`ThreadPoolExecutor`, the system's default stack, as the API runs checks), the depth cap and the
answers of checks that need one unit of depth less than the cap, the cap, and one unit more, on
a chain of 1000 hops and on a cycle of 1000 hops, each asked with depth `MAX_DEPTH` (the worker
thread asks the deepest of them again). With
``raised``, Python's recursion limit is raised so that, from source, the cap is `MAX_DEPTH`
itself. A crash (a C stack overflow is SIGSEGV) is the test's failure, so nothing here catches
more than the engine's own errors.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from engine.engine import Engine
from engine.errors import EngineError
from engine.types import MAX_DEPTH, RESERVED_FRAMES, Entity, RequestOptions
from storage.base import Changes, Subject, Tuple
from storage.compiled import BUILD, MODULES, loaded_compiled
from storage.leveldb import LevelDBStore
from tests.engine.support import deep_folders

TENANT = "t1"
HOPS = 1000
#: `nested` levels of the wide and deep schema: half the parser's limit (128 operators deep),
#: 67 Python frames a unit of depth, 67,000 at `MAX_DEPTH`.
LEVELS = 64
#: Relations in a union beside the hop: they hold nothing, and each is one more closure.
WIDTH = 16


GROUPS = """
entity user {}
entity group { relation member @user @group#member }
"""


def group_data(offsets: dict[str, int]) -> list[str]:
    """A chain ``a0 -> a1 -> ... -> a1000`` and a cycle ``c0 -> ... -> c999 -> c0`` of nested
    groups; each subject of ``offsets`` is a member of the group that many hops down both."""
    tuples = [f"group:a{i}#member@group:a{i + 1}#member" for i in range(HOPS)]
    tuples += [f"group:c{i}#member@group:c{(i + 1) % HOPS}#member" for i in range(HOPS)]
    for name, hops in offsets.items():
        tuples += [f"group:a{hops}#member@user:{name}", f"group:c{hops % HOPS}#member@user:{name}"]
    return tuples


def folder_data(offsets: dict[str, int], levels: int) -> list[str]:
    """The same chain and cycle of folders (``parent``); a subject is a viewer that many hops
    up, and passes every ``yes`` on the way."""
    tuples = [f"folder:a{i}#parent@folder:a{i + 1}" for i in range(HOPS)]
    tuples += [f"folder:c{i}#parent@folder:c{(i + 1) % HOPS}" for i in range(HOPS)]
    for name, hops in offsets.items():
        tuples += [f"folder:a{hops}#viewer@user:{name}"]
        tuples += [f"folder:c{hops % HOPS}#viewer@user:{name}"]
        if levels:
            tuples += [f"folder:{c}{i}#yes@user:{name}" for c in "ac" for i in range(HOPS + 1)]
    return tuples


def write(store: LevelDBStore, tuples: list[str]) -> None:
    parsed = [Tuple.parse(t) for t in tuples]
    for start in range(0, len(parsed), store.max_write_items):
        store.write(TENANT, Changes(write_tuples=parsed[start : start + store.max_write_items]))


def outcome(ask: Callable[[], bool]) -> str:
    try:
        return str(ask())
    except EngineError as exc:
        return type(exc).__name__


def scenario(
    data_dir: str, schema: str, kind: str, data: Callable[[dict[str, int]], list[str]], raised: bool
) -> dict[str, object]:
    """The answers of one schema on both threads."""
    store = LevelDBStore(data_dir, gc_interval=None)
    try:
        store.write_schema(TENANT, schema)
        program = Engine(store).compiled(TENANT).program
        if raised:
            # One unit of depth more than the cap needs, less a frame: the deepest stack also
            # holds the callers and a leaf's reads below the last unit.
            frames = program.frames_per_depth
            sys.setrecursionlimit(RESERVED_FRAMES + (MAX_DEPTH + 1) * frames - 1)
        cap = Engine(store).depth_cap(Engine(store).compiled(TENANT))
        # A hop costs one unit and the last relation one more (groups: the hop alone).
        spent = 0 if kind == "group" else 1
        offsets = {f"cap{d:+d}": cap - spent + d for d in (-1, 0, 1) if cap - spent + d >= 0}
        offsets["max"] = MAX_DEPTH - spent
        write(store, data(offsets))
        relation = "member" if kind == "group" else "view"

        def answers(names: list[str]) -> dict[str, str]:
            engine = Engine(store)  # its own caches: every check below evaluates
            found: dict[str, str] = {}
            for key in names:
                chain, name = key.split(":")
                found[key] = outcome(lambda c=chain, n=name: engine.check(
                    TENANT, Entity(kind, f"{c}0"), relation, Subject("user", n),
                    RequestOptions(depth=MAX_DEPTH),
                ).allowed)
            return found

        on_main = answers([f"{c}:{n}" for c in "ac" for n in [*offsets, "nobody"]])
        with ThreadPoolExecutor(1) as pool:  # the deepest ones again (each costs the most)
            on_worker = pool.submit(answers, ["a:cap+0", "a:cap+1", "c:cap+0"]).result()
        return {
            "cap": cap,
            "frames_per_depth": program.frames_per_depth,
            "main": on_main,
            "worker": on_worker,
        }
    finally:
        store.close()
        sys.setrecursionlimit(1000)


def main() -> None:
    raised = sys.argv[1:] == ["raised"]
    modules = {m: loaded_compiled(importlib.import_module(m)) for m in MODULES}
    schemas = {
        "groups": (GROUPS, "group", group_data),
        "folders": (deep_folders(0), "folder", lambda o: folder_data(o, 0)),
        "wide_deep": (deep_folders(LEVELS, WIDTH), "folder", lambda o: folder_data(o, LEVELS)),
    }
    results: dict[str, object] = {}
    for name, (schema, kind, data) in schemas.items():
        print(f"running {name}", file=sys.stderr, flush=True)  # names a crash's scenario
        with tempfile.TemporaryDirectory() as data_dir:
            results[name] = scenario(data_dir, schema, kind, data, raised)
    print(json.dumps({"compiled": BUILD.compiled, "modules": modules, "results": results}))


if __name__ == "__main__":
    main()
