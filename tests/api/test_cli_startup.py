"""The command line starts without the server stack: `--help` and the client commands list and
run without importing the aiohttp server, gRPC or the PostgreSQL driver, which only `serve`,
`migrate` and a direct import need (each costs a few hundred milliseconds at every start)."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_STACK = ("api.app", "aiohttp.web", "grpc", "psycopg", "api.grpc")

PROBE = f"""
import json, sys
from api.cli import main
sys.argv = ["stonetown", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
stack = {SERVER_STACK!r}
print(json.dumps(sorted(m for m in sys.modules if m in stack)), file=sys.stderr)
"""


def _loaded(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return list(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_and_the_import_command_load_no_server_stack() -> None:
    assert _loaded("--help") == []
    assert _loaded("import", "--help") == []
    assert _loaded("export", "--help") == []


def test_the_probe_sees_the_driver_when_migrate_loads_it() -> None:
    assert "psycopg" in _loaded("migrate", "--database-url", "postgresql://127.0.0.1:1/none")
