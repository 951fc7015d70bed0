"""Errors that help: an unknown word in a check, a record list or a `tuples read` is refused
naming the word and the closest known one; a bad environment variable names the variable and
what it expects."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from api.cli import main
from api.config import ConfigError, load_config
from tests.api.relations_support import CONTACT_SCHEMA, strapi_error

_ids = itertools.count(1)
SCHEMA = """
entity user {}
entity doc {
    relation viewer @user
    relation owner @user
    permission view = viewer or owner
}
"""


@pytest.fixture
def api(module_server: Any) -> Iterator[httpx.Client]:
    with module_server.client() as client:
        yield client


def _tenant(api: httpx.Client, schema: str) -> str:
    tenant = f"errors{next(_ids)}"
    assert api.post("/v1/tenants/create", json={"id": tenant}).status_code == 200
    written = api.post(f"/v1/tenants/{tenant}/schemas/write", json={"schema": schema})
    assert written.status_code == 200, written.text
    return tenant


def test_an_unknown_permission_in_a_check_says_did_you_mean(api: httpx.Client) -> None:
    tenant = _tenant(api, SCHEMA)
    body = {
        "entity": {"type": "doc", "id": "1"},
        "permission": "veiw",
        "subject": {"type": "user", "id": "ann"},
        "metadata": {},
    }
    response = api.post(f"/v1/tenants/{tenant}/permissions/check", json=body)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "`veiw`" in message and "did you mean `view` or `viewer`?" in message


def test_an_unknown_filter_key_in_a_record_list_says_did_you_mean(api: httpx.Client) -> None:
    tenant = _tenant(api, CONTACT_SCHEMA)
    response = api.get(f"/v1/tenants/{tenant}/xapi2/data/relationship", params={"knd": "friend"})
    error = strapi_error(response, 400)
    assert "unknown query parameter knd; did you mean kind?" in error["message"]
    assert error["details"]["suggestions"] == ["kind"]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (
            ["--relation", "viewr"],
            "relation `viewr` is not in the tenant's schema; did you mean `viewer`?",
        ),
        (["--entity-type", "doc", "--relation", "veiw"], "relation of `doc` `veiw`"),
        (
            ["--entity-type", "dco"],
            "entity type `dco` is not in the tenant's schema; did you mean `doc`?",
        ),
    ],
    ids=["relation", "relation-of-type", "entity-type"],
)
def test_tuples_read_of_an_unknown_name_exits_1_saying_did_you_mean(
    module_server: Any, api: httpx.Client, flags: list[str], words: str
) -> None:
    tenant = _tenant(api, SCHEMA)
    where = ["--url", module_server.url, "--tenant", tenant]
    result = CliRunner().invoke(main, ["tuples", "read", *flags, *where])
    assert result.exit_code == 1, result.stdout + result.stderr
    assert words in result.stderr
    known = CliRunner().invoke(main, ["tuples", "read", "--relation", "viewer", *where])
    assert known.exit_code == 0, known.stderr


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        (
            "STONETOWN_PORT",
            "abc",
            "STONETOWN_PORT: port: expected an integer (e.g. 3476), got 'abc'",
        ),
        (
            "STONETOWN_ACCESS_LOG",
            "maybe",
            "STONETOWN_ACCESS_LOG: access_log: expected true or false",
        ),
    ],
)
def test_a_bad_environment_variable_names_itself_and_what_it_expects(
    variable: str, value: str, words: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(environ={variable: value})
    assert words in str(raised.value)
    assert "invalid literal" not in str(raised.value)
