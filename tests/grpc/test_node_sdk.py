"""Permify's own Node.js SDK (@permify/permify-node, pinned in node/package.json) against a real
`stonetown serve`: node/scenario.js runs the whole scenario through the SDK's gRPC client (its
bearer-key interceptor included) and prints what it was answered.

`make test` installs the SDK (`npm ci` in tests/grpc/node) when it is missing. Without Node.js or
the SDK this test skips, saying why, unless CI is set: then it fails, since a CI run without it
would pass without having tested the SDK.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.grpc import scenario
from tests.grpc.conftest import KEY, Server, wait_for_no_streams

NODE_PROJECT = Path(__file__).parent / "node"
SDK = NODE_PROJECT / "node_modules" / "@permify" / "permify-node"


def _node() -> str:
    node = shutil.which("node")
    missing = (
        "Node.js is not on PATH"
        if node is None
        else f"the SDK is not installed in {NODE_PROJECT}: run `npm ci` there (make test does)"
        if not SDK.is_dir()
        else ""
    )
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} (CI is set, so this test may not skip)")
        pytest.skip(missing)
    assert node is not None
    return node


def test_the_installed_sdk_is_the_pinned_version() -> None:
    _node()
    pinned = json.loads((NODE_PROJECT / "package.json").read_text())["dependencies"]
    installed = json.loads((SDK / "package.json").read_text())["version"]
    assert pinned == {"@permify/permify-node": installed}


def test_the_scenario_through_permifys_node_sdk(server: Server, http: httpx.Client) -> None:
    node = _node()
    wait_for_no_streams(http)  # its watch needs the server's one stream slot
    spec = {
        "address": server.grpc_address,
        "key": KEY,
        "tenant": "node-sdk",
        "schema": scenario.SCHEMA,
        "tuples": scenario.TUPLES,
        "later_tuple": scenario.LATER_TUPLE,
        "checks": [list(c[:3]) for c in scenario.CHECKS],
        "lookup_entity": list(scenario.LOOKUP_ENTITY[:3]),
        "lookup_subject": list(scenario.LOOKUP_SUBJECT[:3]),
        "subject_permission": list(scenario.SUBJECT_PERMISSION[:2]),
        "read_type": "doc",
        "read_page_size": 2,
    }
    ran = subprocess.run(
        [node, "scenario.js"],
        cwd=NODE_PROJECT,
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)

    assert got["tenant"] == "node-sdk"
    assert got["schema_version"] and got["snap_token"]
    assert got["checks"] == [
        "CHECK_RESULT_ALLOWED" if allowed else "CHECK_RESULT_DENIED"
        for *_, allowed in scenario.CHECKS
    ]
    assert got["lookup_entity"] == scenario.LOOKUP_ENTITY[3]
    assert got["lookup_entity_stream"] == scenario.LOOKUP_ENTITY[3]
    assert got["lookup_subject"] == scenario.LOOKUP_SUBJECT[3]
    assert got["subject_permission"] == scenario.SUBJECT_PERMISSION[2]
    assert [len(page) for page in got["read_pages"]] == scenario.READ_PAGES
    read = sorted(t for page in got["read_pages"] for t in page)
    assert read == sorted(t for t in scenario.TUPLES if t.startswith("doc:"))
    assert got["watch"] == {
        "snap_token": got["later_snap_token"],
        "tuples": [scenario.LATER_TUPLE],
        "operations": ["OPERATION_CREATE"],
    }
    assert got["error"]["code"] == 3  # INVALID_ARGUMENT
    assert got["error"]["details"].startswith("ERROR_CODE_VALIDATION: metadata.depth: ")
