"""`stonetown serve`: settings precedence, the ready line, keys, clashes and graceful shutdown,
with the server run as a real subprocess of the installed console script."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from api.cli import main
from api.config import Config, ConfigError, load_config
from storage.leveldb import LevelDBStore
from tests.api.served import STONETOWN, Served, environ

# -- settings -----------------------------------------------------------------------------------


def _yaml(path: Path, settings: dict[str, object]) -> str:
    path.write_text(yaml.safe_dump(settings))
    return str(path)


@pytest.mark.parametrize(
    ("file", "env", "flags", "expected"),
    [
        ({}, {}, {}, Config()),
        ({"port": 1, "host": "0.0.0.0"}, {}, {}, Config(port=1, host="0.0.0.0")),
        ({"port": 1}, {"STONETOWN_PORT": "2"}, {}, Config(port=2)),
        ({"port": 1}, {"STONETOWN_PORT": "2"}, {"port": 3}, Config(port=3)),
        ({}, {"STONETOWN_PRESHARED_KEYS": "a, b,"}, {}, Config(preshared_keys=("a", "b"))),
        (
            {"preshared_keys": ["f"]},
            {"STONETOWN_PRESHARED_KEYS": "e"},
            {"preshared_keys": ("x", "y")},
            Config(preshared_keys=("x", "y")),
        ),
        ({"data_dir": "f"}, {"STONETOWN_DATA_DIR": "e"}, {"data_dir": None}, Config(data_dir="e")),
        ({"preshared_keys": ["f"]}, {}, {"preshared_keys": ()}, Config(preshared_keys=("f",))),
    ],
    ids=[
        "defaults",
        "file",
        "env-over-file",
        "flag-over-env",
        "env-keys-comma-separated",
        "flag-keys-replace-env-keys",
        "unset-flag-keeps-env",
        "no-key-flags-keep-file-keys",
    ],
)
def test_load_config_layers_defaults_file_env_flags(
    tmp_path: Path,
    file: dict[str, object],
    env: dict[str, str],
    flags: dict[str, object],
    expected: Config,
) -> None:
    path = _yaml(tmp_path / "c.yaml", file)
    assert load_config(file=path, environ=env, overrides=flags) == expected


def test_load_config_reads_the_file_named_by_stonetown_config(tmp_path: Path) -> None:
    path = _yaml(tmp_path / "c.yaml", {"port": 7})
    assert load_config(environ={"STONETOWN_CONFIG": path}).port == 7


@pytest.mark.parametrize(
    ("file", "env", "message"),
    [
        ({}, {"STONETOWN_PORT": "http"}, "environment STONETOWN_PORT: port"),
        ({}, {"STONETOWN_PORT": "70000"}, "port must be 0-65535, got 70000"),
        ({"colour": "blue"}, {}, "unknown setting 'colour'"),
        ({"access_log": "maybe"}, {}, "access_log: expected true or false"),
        ({"db_spin_microseconds": 1001}, {}, "db_spin_microseconds must be 0 to 1000"),
    ],
    ids=[
        "env-not-a-number",
        "env-out-of-range",
        "file-unknown-key",
        "file-bad-bool",
        "spin-over-a-millisecond",
    ],
)
def test_load_config_names_the_bad_setting(
    tmp_path: Path, file: dict[str, object], env: dict[str, str], message: str
) -> None:
    path = _yaml(tmp_path / "c.yaml", file)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(file=path, environ=env)


def _print_config(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["serve", "--print-config", *args], env=env)
    return result.exit_code, result.stdout + result.stderr


def test_serve_takes_flags_over_env_over_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith("STONETOWN_")]:
        monkeypatch.delenv(name)
    path = _yaml(tmp_path / "c.yaml", {"port": 1, "host": "10.0.0.1", "data_dir": "file-dir"})
    env = {"STONETOWN_CONFIG": path, "STONETOWN_PORT": "2", "STONETOWN_HOST": "10.0.0.2"}
    code, out = _print_config(["--port", "3"], env)
    assert code == 0, out
    shown = yaml.safe_load(out)
    assert (shown["port"], shown["host"], shown["data_dir"]) == (3, "10.0.0.2", "file-dir")
    code, out = _print_config(["--config", path, "--preshared-key", "s3cret"], {})
    assert code == 0, out
    assert yaml.safe_load(out)["preshared_keys"] == ["<hidden>"]
    assert "s3cret" not in out


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            [],
            {"STONETOWN_PORT": "x"},
            "environment STONETOWN_PORT: port: expected an integer (e.g. 3476), got 'x'",
        ),
        (["--config", "/nonexistent/c.yaml"], {}, "cannot read config file /nonexistent/c.yaml"),
        (["--port", "99999"], {}, "99999 is not in the range 0<=x<=65535"),
        (["--preshared-key", " k"], {}, "a preshared key must be non-empty"),
    ],
    ids=["bad-env", "missing-config-file", "bad-flag", "bad-key"],
)
def test_serve_bad_setting_is_a_usage_error(
    args: list[str], env: dict[str, str], message: str
) -> None:
    code, out = _print_config(args, env)
    assert code == 2
    assert message in out
    assert "Traceback" not in out


# -- the real server ---------------------------------------------------------------------------


def test_serve_prints_one_ready_line_then_serves(
    launch: Callable[..., Served], tmp_path: Path
) -> None:
    served = launch("data")
    assert served.port != 0
    assert served.ready == f"stonetown serving on {served.url} (data: {tmp_path / 'data'})\n"
    with httpx.Client(base_url=served.url) as client:
        assert client.get("/healthz").json() == {"status": "SERVING"}
        assert client.post("/v1/tenants/create", json={"id": "acme"}).status_code == 200
    assert served.stop() == 0
    assert served.proc.stdout is not None
    assert served.proc.stdout.read() == ""  # nothing after the ready line
    log = served.log()
    assert '"path": "/v1/tenants/create"' in log  # the JSON access log goes to stderr
    assert "SIGTERM: stopping" in log
    assert "store closed" in log


def test_a_client_leaving_mid_request_is_logged_in_one_line(
    launch: Callable[..., Served],
) -> None:
    served = launch("data")
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as conn:
        conn.sendall(b"POST /v1/tenants/create HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        _wait_for(lambda: _in_flight(served.url) >= 2, "the request to be in flight")
    _wait_for(lambda: '"status": 499' in served.log(), "the access log line")
    assert served.stop() == 0
    log = served.log()
    assert "client gone during POST /v1/tenants/create" in log
    assert "Traceback" not in log and "internal error" not in log


def test_serve_keys_from_env_are_required_except_for_health(launch: Callable[..., Served]) -> None:
    served = launch("data", env={"STONETOWN_PRESHARED_KEYS": "k2,k3"})
    with httpx.Client(base_url=served.url) as client:
        assert client.get("/healthz").status_code == 200
        assert client.post("/v1/tenants/list").status_code == 401
        for key, status in [("k2", 200), ("k3", 200), ("k1", 401)]:
            headers = {"Authorization": f"Bearer {key}"}
            assert client.post("/v1/tenants/list", headers=headers).status_code == status, key


def test_serve_key_flags_replace_env_keys(launch: Callable[..., Served]) -> None:
    served = launch(
        "data",
        "--preshared-key",
        "k1",
        "--preshared-key",
        "k4",
        env={"STONETOWN_PRESHARED_KEYS": "k2"},
    )
    with httpx.Client(base_url=served.url) as client:
        for key, status in [("k1", 200), ("k4", 200), ("k2", 401)]:
            headers = {"Authorization": f"Bearer {key}"}
            assert client.post("/v1/tenants/list", headers=headers).status_code == status, key


def test_second_server_on_the_same_data_dir_or_port_fails_clearly(
    launch: Callable[..., Served], tmp_path: Path
) -> None:
    served = launch("data")
    for args, message in [
        (["--port", "0", "--data-dir", str(tmp_path / "data")], "is already open"),
        (["--port", str(served.port), "--data-dir", str(tmp_path / "other")], "cannot listen on"),
    ]:
        second = subprocess.run(
            [STONETOWN, "serve", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=environ(),
            check=False,
        )
        assert second.returncode == 1, second.stderr
        assert second.stdout == ""
        assert message in second.stderr
        assert "Traceback" not in second.stderr
    # The first server is unharmed.
    assert httpx.get(f"{served.url}/healthz").status_code == 200


def _in_flight(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(r"^stonetown_http_requests_in_flight (\S+)$", text, re.MULTILINE)
    assert found is not None
    return float(found[1])


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


#: A check that must visit every one of these groups, asked for 100 subjects at once: slow
#: enough (about half a second) to be reliably in flight when the signal arrives.
GROUPS = 4000
SLOW_SCHEMA = """
entity user {}
entity group { relation member @user }
entity doc {
    relation viewer @group#member
    permission view = viewer
}
"""


def _slow_request(client: httpx.Client) -> bytes:
    assert client.post("/v1/tenants/t1/schemas/write", json={"schema": SLOW_SCHEMA}).is_success
    for start in range(0, GROUPS, 1000):
        tuples = [
            {
                "entity": {"type": "doc", "id": "1"},
                "relation": "viewer",
                "subject": {"type": "group", "id": f"g{i}", "relation": "member"},
            }
            for i in range(start, start + 1000)
        ]
        assert client.post("/v1/tenants/t1/data/write", json={"tuples": tuples}).is_success
    items = [
        {
            "entity": {"type": "doc", "id": "1"},
            "permission": "view",
            "subject": {"type": "user", "id": f"u{i}"},
        }
        for i in range(100)
    ]
    body = json.dumps({"items": items}).encode()
    return (
        b"POST /v1/tenants/t1/permissions/bulk-check HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_lets_the_request_in_flight_finish_then_closes_the_store(
    launch: Callable[..., Served], tmp_path: Path, signum: int
) -> None:
    served = launch("data")
    with httpx.Client(base_url=served.url, timeout=30) as client:
        request = _slow_request(client)
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as conn:
        conn.sendall(request)
        # In flight: this request and the /metrics request asking.
        _wait_for(lambda: _in_flight(served.url) >= 2, "the request to be in flight")
        served.proc.send_signal(signum)
        _wait_for(lambda: _refused(served.port), "the server to stop accepting connections")
        waiting, _, _ = select.select([conn], [], [], 0)
        assert not waiting, "the request finished before the shutdown began; make it slower"
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    results = json.loads(payload)["results"]
    assert [r["can"] for r in results] == ["CHECK_RESULT_DENIED"] * 100
    assert served.proc.wait(30) == 0, served.log()
    log = served.log()
    assert "Traceback" not in log
    assert log.index(f"{signal.Signals(signum).name}: stopping") < log.index("/bulk-check")
    store = LevelDBStore(str(tmp_path / "data"))  # the LOCK was released: closed cleanly
    try:
        assert store.schema_head("t1")
    finally:
        store.close()
