"""The validation-file runner (engine/validate.py), coverage (engine/coverage.py) and the
`stonetown validate` / `stonetown coverage` commands, on small files written here."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main
from api.coverage import coverage
from api.validate import (
    Failure,
    SchemaFileError,
    StoreFactory,
    ValidationFileError,
    compile_shape_schema,
    load_shape,
    parse_shape,
    validate_file,
)
from api.validate.runner import _lookup_all, _PagingError
from dsl.schema import AttributeType
from engine.errors import InvalidRequest
from engine.notation import parse_attribute, parse_tuple
from engine.types import LookupPage
from storage.base import Attribute, Tuple

# --- tuple and attribute strings -------------------------------------------------------------

GOOD_ATTRIBUTES = [
    ("doc:1$public|boolean:true", AttributeType.BOOLEAN, True),
    ("doc:1$public|boolean:F", AttributeType.BOOLEAN, False),
    ("doc:1$public|boolean:1", AttributeType.BOOLEAN, True),
    ("doc:1$name|string:hello world", AttributeType.STRING, "hello world"),
    ("doc:1$name|string:", AttributeType.STRING, ""),
    ("doc:1$n|integer:-2147483648", AttributeType.INTEGER, -(2**31)),
    ("doc:1$n|integer:+2147483647", AttributeType.INTEGER, 2**31 - 1),
    ("doc:1$d|double:1.5e3", AttributeType.DOUBLE, 1500.0),
    ("doc:1$d|double:.5", AttributeType.DOUBLE, 0.5),
    ("doc:1$d|double:-Inf", AttributeType.DOUBLE, float("-inf")),
    ("doc:1$ips|string[]:18.216.238.147,94.176.248.171", AttributeType.STRING_ARRAY,
     ("18.216.238.147", "94.176.248.171")),
    ("doc:1$flags|boolean[]:true,false", AttributeType.BOOLEAN_ARRAY, (True, False)),
    ("doc:1$ns|integer[]:1,2,3", AttributeType.INTEGER_ARRAY, (1, 2, 3)),
    ("doc:1$ds|double[]:1,2.5", AttributeType.DOUBLE_ARRAY, (1.0, 2.5)),
    ("  doc:1$public|boolean:true  ", AttributeType.BOOLEAN, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "kind", "value"), GOOD_ATTRIBUTES, ids=[t.strip() for t, _, _ in GOOD_ATTRIBUTES]
)
def test_parse_attribute_reads_every_value_type(
    text: str, kind: AttributeType, value: object
) -> None:
    attribute = parse_attribute(text)
    assert attribute == Attribute("doc", "1", attribute.name, kind, value)  # type: ignore[arg-type]


BAD_ATTRIBUTES = [
    ("doc:1$public", "exactly one `|`"),
    ("doc:1$a|string:x|y", "exactly one `|`"),
    ("doc:1|boolean:true", "exactly one `$`"),
    ("doc:1$|boolean:true", "exactly one `$`"),
    ("doc$public|boolean:true", "the entity is type:id"),
    ("doc:1:2$public|boolean:true", "the entity is type:id"),
    ("doc:1$url|string:http://x", "the value may not contain `:`"),
    ("doc:1$public|true", "one `:` after `|`"),
    ("doc:1$public|bool:true", "unknown value type 'bool'"),
    ("doc:1$public|Boolean:true", "unknown value type 'Boolean'"),
    ("doc:1$public|boolean:yes", "'yes' is not a boolean"),
    ("doc:1$n|integer:2147483648", "out of range: integer is 32-bit"),
    ("doc:1$n|integer:-2147483649", "out of range"),
    ("doc:1$n|integer:1.5", "'1.5' is not an integer"),
    ("doc:1$n|integer:1_000", "'1_000' is not an integer"),
    ("doc:1$n|integer[]:1,,2", "'' is not an integer"),
    ("doc:1$d|double:abc", "'abc' is not a double"),
    ("doc:1$d|double:1e400", "out of range for a double"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_ATTRIBUTES, ids=[t for t, _ in BAD_ATTRIBUTES])
def test_parse_attribute_names_the_string_and_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_attribute(text)
    assert f"invalid attribute {text!r}" in str(caught.value)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("doc:1#owner@user:1", Tuple("doc", "1", "owner", "user", "1")),
        ("doc:1#parent@folder:1#...", Tuple("doc", "1", "parent", "folder", "1")),
        ("doc:1#owner@group:a-b#member", Tuple("doc", "1", "owner", "group", "a-b", "member")),
    ],
    ids=["plain", "ellipsis", "userset"],
)
def test_parse_tuple_reads_permifys_form(text: str, expected: Tuple) -> None:
    assert parse_tuple(text) == expected


@pytest.mark.parametrize(
    "text",
    ["doc:1#owner", "doc:1@user:1", "doc:1#owner@user", "doc#owner@user:1", "a:1#r@b:1@c:1", ""],
    ids=["no-subject", "no-relation", "subject-id", "entity-id", "two-at", "empty"],
)
def test_parse_tuple_refuses_malformed_strings(text: str) -> None:
    with pytest.raises(InvalidRequest, match="expected entity_type:entity_id#relation@"):
        parse_tuple(text)


# --- reading files ----------------------------------------------------------------------------

SCHEMA = """\
schema: |
  entity user {}

  entity group {
      relation member @user
  }

  entity doc {
      relation owner @user @group#member
      attribute public boolean
      permission view = owner or public
      permission edit = owner
  }
"""


def _file(tmp_path: Path, text: str, name: str = "shape.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = _file(tmp_path, text)
    with pytest.raises(ValidationFileError) as caught:
        load_shape(path)
    return [line.removeprefix(f"{path}:") for line in caught.value.lines]


def test_every_malformed_item_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        SCHEMA
        + """\
relationships:
  - doc:1#owner@user:1
  - doc:1#owner
attributes:
  - doc:1$public|boolean:maybe
scenarios:
  - name: s
    checks:
      - subject: user:1
        assertions:
          view: 3
      - entity: doc:1
        subject: user:1
        context: ["doc:1#owner@user:2"]
        assertions: {view: true, view: false}
    entity_filters:
      - entity_type: doc
        subject: user:1
        x_page_size: 0
        assertions: {view: "1"}
""",
    )
    assert problems == [
        "16:5: relationships[1]: invalid tuple 'doc:1#owner': expected "
        "entity_type:entity_id#relation@subject_type:subject_id[#subject_relation]",
        "18:5: attributes[0]: invalid attribute 'doc:1$public|boolean:maybe': "
        "'maybe' is not a boolean (true or false)",
        "22:9: scenarios[0].checks[0]: `entity` is required",
        "24:17: scenarios[0].checks[0].assertions.view: expected true or false, got 3",
        "28:34: scenarios[0].checks[1].assertions: key `view` appears twice",
        "27:18: scenarios[0].checks[1].context: expected a mapping {tuples, attributes, data}; "
        "a list of tuple strings is Permify's old context format, which it no longer accepts",
        "33:28: scenarios[0].entity_filters[0].assertions.view: expected a list, got '1'",
        "32:22: scenarios[0].entity_filters[0].x_page_size: must be at least 1, got 0",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty file: expected schema, relationships, attributes and scenarios"),
        ("schema: [\n", "2:1: not valid YAML"),
        ("- a\n- b\n", "1:1: file: expected a mapping, got a list"),
        ("relationships: []\n", "1:1: schema: is required (DSL text or a relative file path)"),
        (
            "schema: https://gist.github.com/someone/abc\n",
            "1:9: schema: https://gist.github.com/someone/abc is a URL: validation runs offline",
        ),
        ("schema: missing/schema.perm\n", "1:9: schema: schema file"),
    ],
    ids=["empty", "yaml-syntax", "not-a-mapping", "no-schema", "url", "missing-schema-file"],
)
def test_files_that_cannot_run_say_why(tmp_path: Path, text: str, expected: str) -> None:
    (problem,) = _problems(tmp_path, text)
    assert expected in problem


def test_yaml_reads_scalars_as_permifys_yaml_v3_does() -> None:
    shape = parse_shape(
        SCHEMA
        + """\
scenarios:
  - name: s
    checks:
      - entity: doc:1
        subject: user:1
        assertions: {view: yes, edit: off}
    entity_filters:
      - entity_type: doc
        subject: user:1
        assertions: {view: [on, 01, 2, "3"]}
    subject_filters:
      - subject_reference: user
        entity: doc:1
        context: {data: {day: 2024-01-31, n: 5}}
        assertions: {view: [1]}
"""
    )
    (scenario,) = shape.scenarios
    assert shape.file == "<string>"
    assert dict(scenario.checks[0].assertions) == {"view": True, "edit": False}
    assert scenario.entity_filters[0].assertions["view"] == ("on", "01", "2", "3")
    assert scenario.subject_filters[0].context.data == {"day": "2024-01-31", "n": 5}


def test_a_null_assertion_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        SCHEMA
        + """\
scenarios:
  - name: s
    checks:
      - entity: doc:1
        subject: user:1
        assertions:
          view: false
          checks:
""",
    )
    shape = load_shape(path)
    assert dict(shape.scenarios[0].checks[0].assertions) == {"view": False}
    assert shape.warnings == (
        f"{path}:21:18: warning: scenarios[0].checks[0].assertions.checks: "
        "no expected value (null); skipped",
    )


def test_depth_and_context_are_read_per_item(tmp_path: Path) -> None:
    shape = load_shape(
        _file(
            tmp_path,
            SCHEMA
            + """\
scenarios:
  - name: s
    checks:
      - entity: doc:1
        subject: group:1#member
        depth: 20
        context:
          tuples: ["doc:1#owner@user:9"]
          attributes: ["doc:1$public|boolean:true"]
          data: {amount: 3000}
        assertions: {view: true}
      - entity: doc:1
        subject: user:1#...
        depth: 0
        context:
        assertions: {view: true}
""",
        )
    )
    first, second = shape.scenarios[0].checks
    assert first.depth == 20
    assert first.subject.relation == "member"
    assert first.context.tuples == (Tuple("doc", "1", "owner", "user", "9"),)
    assert first.context.attributes == (
        Attribute("doc", "1", "public", AttributeType.BOOLEAN, True),
    )
    assert dict(first.context.data) == {"amount": 3000}
    assert second.depth == 100
    assert second.subject.relation == ""
    assert second.context.is_empty


# --- unknown keys are errors, queries that ask nothing are warnings ----------------------------

_CHECK = "      - entity: doc:1\n        subject: user:1\n"
UNKNOWN_KEYS = [
    pytest.param(
        "scenarioz:\n  - name: s\n",
        "14:1: file: unknown key `scenarioz` (did you mean `scenarios`?)",
        id="top-level",
    ),
    pytest.param(
        "scenarios:\n  - name: s\n    chekcs: []\n",
        "16:5: scenarios[0]: unknown key `chekcs` (did you mean `checks`?)",
        id="scenario",
    ),
    pytest.param(
        "scenarios:\n  - name: s\n    checks:\n" + _CHECK + "        assertion: {view: true}\n",
        "19:9: scenarios[0].checks[0]: unknown key `assertion` (did you mean `assertions`?)",
        id="check",
    ),
    pytest.param(
        "scenarios:\n  - entity_filters:\n      - entity_type: doc\n        subject: user:1\n"
        "        assertions: {view: []}\n        x_pagesize: 2\n",
        "19:9: scenarios[0].entity_filters[0]: unknown key `x_pagesize` "
        "(did you mean `x_page_size`?)",
        id="entity-filter",
    ),
    pytest.param(
        "scenarios:\n  - subject_filters:\n      - subject_reference: user\n"
        "        entity: doc:1\n        contxt: {}\n        assertions: {view: []}\n",
        "18:9: scenarios[0].subject_filters[0]: unknown key `contxt` (did you mean `context`?)",
        id="subject-filter",
    ),
    pytest.param(
        "scenarios:\n  - checks:\n" + _CHECK + "        context: {tuple: [], data: {}}\n"
        "        assertions: {view: true}\n",
        "18:19: scenarios[0].checks[0].context: unknown key `tuple` (did you mean `tuples`?)",
        id="context",
    ),
    pytest.param(
        "scenarios:\n  - x_expand:\n      - entity: doc:1\n        assertion: {view: {}}\n",
        "17:9: scenarios[0].x_expand[0]: unknown key `assertion` (did you mean `assertions`?)",
        id="x-expand-item",
    ),
    pytest.param(
        "scenarios:\n  - x_subject_permission:\n      - entity: doc:1\n        subject: user:1\n"
        "        only_permissions: true\n        results: {}\n",
        "18:9: scenarios[0].x_subject_permission[0]: unknown key `only_permissions` "
        "(did you mean `only_permission`?)",
        id="x-subject-permission-item",
    ),
    pytest.param(
        "x_unvalidated_relationships:\n  - tuple: doc:1#owner@user:1\n    eror: X\n",
        "16:5: x_unvalidated_relationships[0]: unknown key `eror` (did you mean `error`?)",
        id="x-unvalidated-item",
    ),
    pytest.param(
        "x_comment: hello\n",
        "14:1: file: unknown key `x_comment`; expected `schema`, `relationships`, `attributes`, "
        "`scenarios`, `tenant_id`, `x_unvalidated_relationships`, `x_source` or `x_notes`",
        id="undocumented-x-key",
    ),
    pytest.param(
        "scenarios:\n  - checks:\n" + _CHECK + "        x_page_size: 2\n"
        "        assertions: {view: true}\n",
        "18:9: scenarios[0].checks[0]: unknown key `x_page_size`; expected `entity`, `subject`, "
        "`depth`, `context` or `assertions`",
        id="x-key-of-another-item",
    ),
]


@pytest.mark.parametrize(("tail", "expected"), UNKNOWN_KEYS)
def test_an_unknown_key_at_any_level_is_an_error_with_a_suggestion(
    tmp_path: Path, tail: str, expected: str
) -> None:
    assert _problems(tmp_path, SCHEMA + tail) == [expected]


def test_every_documented_key_is_accepted(tmp_path: Path) -> None:
    shape = load_shape(
        _file(
            tmp_path,
            SCHEMA
            + """\
tenant_id: t1
x_source: {repository: example, anything: [goes, here]}
x_notes: free text
relationships: [doc:1#owner@user:1]
attributes: [doc:3$public|boolean:true]
x_unvalidated_relationships:
  - {tuple: doc:1#owner@doc:2, error: ERROR_CODE_SUBJECT_TYPE_NOT_FOUND}
scenarios:
  - name: s
    description: d
    checks:
      - {entity: doc:1, subject: user:1, depth: 5, context: {tuples: [], attributes: [],
         data: {any_key: 1}}, assertions: {view: true}}
    entity_filters:
      - {entity_type: doc, subject: user:1, depth: 5, context: {}, x_page_size: 1,
         x_scope: {doc: ["1"]}, assertions: {view: ["1"]}}
    subject_filters:
      - {subject_reference: user, entity: doc:1, depth: 5, context: {}, x_page_size: 1,
         assertions: {view: ["1"]}}
    x_expand:
      - {entity: doc:1, depth: 5, context: {}, assertions: {view: {any: tree}}}
    x_subject_permission:
      - {entity: doc:1, subject: user:1, only_permission: true, depth: 5, context: {},
         results: {view: CHECK_RESULT_ALLOWED}}
""",
        )
    )
    (scenario,) = shape.scenarios
    assert shape.warnings == ()
    queries = (scenario.checks, scenario.entity_filters, scenario.subject_filters,
               scenario.expands, scenario.subject_permissions)  # fmt: skip
    assert [len(q) for q in queries] == [1, 1, 1, 1, 1]


def test_a_scenario_or_item_that_asks_nothing_is_a_warning(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        SCHEMA
        + """\
scenarios:
  - name: empty
    description: forgot the checks
  - name: half
    checks:
      - entity: doc:1
        subject: user:1
      - entity: doc:1
        subject: user:1
        assertions: {view: false}
    entity_filters:
      - entity_type: doc
        subject: user:1
        assertions:
""",
    )
    shape = load_shape(path)
    assert shape.warnings == (
        f"{path}:15:5: warning: scenarios[0]: scenario asks nothing: no checks, entity_filters "
        "or subject_filters",
        f"{path}:19:9: warning: scenarios[1].checks[0]: no assertions: nothing is asked",
        f"{path}:25:9: warning: scenarios[1].entity_filters[0]: no assertions: nothing is asked",
    )
    code, lines = _invoke("validate", str(path))
    assert code == 0
    assert lines == [*shape.warnings, f"{path}: SUCCESS (2 scenarios, 1 assertions)"]


def test_cli_validate_fails_a_file_with_misspelt_keys_at_their_positions(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        SCHEMA
        + """\
scenarios:
  - name: s
    chekcs:
      - entity: doc:1
        subject: user:1
        assertion: {view: false}
""",
    )
    code, lines = _invoke("validate", str(path))
    assert code == 1
    assert lines == [
        f"{path}:16:5: scenarios[0]: unknown key `chekcs` (did you mean `checks`?)",
        f"{path}: FAILED",
    ]


# --- schema errors point into the file the user edits ----------------------------------------

BROKEN = "entity user {}\n\nentity doc {\n    relation owner @user\n    permission view = ownr\n}\n"


def _schema_error(path: Path) -> tuple[int, int, str]:
    shape = load_shape(path)
    with pytest.raises(SchemaFileError) as caught:
        compile_shape_schema(shape)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert caught.value.lines == (str(problem),)
    return problem.line, problem.column, problem.message


def test_schema_errors_in_a_literal_block_point_into_the_yaml(tmp_path: Path) -> None:
    block = textwrap.indent(BROKEN, "    ")
    path = _file(tmp_path, "# a comment\nschema: |\n" + block)
    line, column, message = _schema_error(path)
    assert (line, column) == (7, 27)
    assert path.read_text().splitlines()[line - 1][column - 1 :] == "ownr"
    assert "`ownr` is not a relation" in message


def test_syntax_errors_of_two_entities_both_point_into_the_yaml(tmp_path: Path) -> None:
    two = BROKEN.replace("@user", "@user $") + "entity folder {\n    relation owner = @user\n}\n"
    path = _file(tmp_path, "schema: |\n" + textwrap.indent(two, "    "))
    with pytest.raises(SchemaFileError) as caught:
        compile_shape_schema(load_shape(path))
    lines = path.read_text().splitlines()
    found = [lines[p.line - 1][p.column - 1 :] for p in caught.value.problems]
    assert found == ["$", "= @user"]


def test_schema_errors_in_a_folded_block_point_into_the_yaml(tmp_path: Path) -> None:
    folded = BROKEN.replace("\n    ", "\n\n    ")
    path = _file(tmp_path, "schema: >-\n" + textwrap.indent(folded, "  "))
    line, column, _ = _schema_error(path)
    assert path.read_text().splitlines()[line - 1][column - 1 :] == "ownr"


def test_schema_errors_in_a_schema_file_point_into_that_file(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    schema_file = tmp_path / "schemas" / "doc.perm"
    schema_file.write_text(BROKEN)
    path = _file(tmp_path, "schema: schemas/doc.perm\n")
    shape = load_shape(path)
    assert shape.schema.text == BROKEN
    with pytest.raises(SchemaFileError) as caught:
        compile_shape_schema(shape)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.column) == (str(schema_file), 5, 23)


def test_schema_errors_in_an_escaped_string_fall_back_to_the_schema_start(tmp_path: Path) -> None:
    escaped = BROKEN.replace("\n", "\\n")
    path = _file(tmp_path, f'relationships: []\nschema: "{escaped}"\n')
    line, column, message = _schema_error(path)
    assert (line, column) == (2, 9)
    assert message.endswith("(schema line 5, column 23)")


# --- running ---------------------------------------------------------------------------------

DATA = """\
relationships:
  - doc:1#owner@user:1
  - doc:2#owner@group:1#member
  - group:1#member@user:2
attributes:
  - doc:3$public|boolean:true
"""


def _run(
    tmp_path: Path, store_factory: StoreFactory, scenarios: str, data: str = DATA
) -> tuple[Path, list[Failure], int]:
    path = _file(tmp_path, SCHEMA + data + textwrap.dedent(scenarios))
    report = validate_file(path, store_factory=store_factory)
    assert report.file == str(path)
    return path, list(report.failures), report.assertions


def test_passing_scenarios_report_counts_and_no_failures(
    tmp_path: Path, store_factory: StoreFactory
) -> None:
    path = _file(
        tmp_path,
        SCHEMA
        + DATA
        + """\
scenarios:
  - name: owners
    checks:
      - entity: doc:1
        subject: user:1
        assertions: {view: true, edit: true}
      - entity: doc:2
        subject: user:2
        assertions: {view: true, edit: true}
      - entity: doc:3
        subject: user:1
        assertions: {view: true, edit: false}
    entity_filters:
      - entity_type: doc
        subject: user:2
        assertions: {view: ["3", "2"], edit: ["2"]}
  - name: subjects
    subject_filters:
      - subject_reference: user
        entity: doc:2
        assertions: {edit: ["2"]}
      - subject_reference: group#member
        entity: doc:2
        assertions: {edit: ["1"]}
    x_subject_permission:
      - entity: doc:1
        subject: user:1
        only_permission: false
        results:
          owner: CHECK_RESULT_ALLOWED
          view: CHECK_RESULT_ALLOWED
          edit: CHECK_RESULT_ALLOWED
      - entity: doc:3
        subject: user:1
        only_permission: true
        results: {view: CHECK_RESULT_ALLOWED, edit: CHECK_RESULT_DENIED}
""",
    )
    report = validate_file(path, store_factory=store_factory)
    assert report.failures == ()
    assert (report.ok, report.scenarios, report.assertions, report.failed) == (True, 2, 12, 0)
    assert report.summary() == "SUCCESS (2 scenarios, 12 assertions)"


def test_a_wrong_expectation_is_reported_with_scenario_query_expected_and_got(
    tmp_path: Path, store_factory: StoreFactory
) -> None:
    _, failures, assertions = _run(
        tmp_path,
        store_factory,
        """\
        scenarios:
          - name: wrong on purpose
            checks:
              - entity: doc:1
                subject: user:1
                assertions: {view: true, edit: false}
            entity_filters:
              - entity_type: doc
                subject: user:2
                assertions: {view: ["2"]}
            subject_filters:
              - subject_reference: user
                entity: doc:1
                context: {tuples: ["doc:1#owner@user:7"]}
                assertions: {edit: ["1"]}
            x_subject_permission:
              - entity: doc:3
                subject: user:1
                only_permission: true
                results: {view: CHECK_RESULT_DENIED}
        """,
    )
    assert assertions == 5
    assert [str(f) for f in failures] == [
        'scenario "wrong on purpose": check doc:1#edit@user:1 -> expected: DENIED, got: ALLOWED',
        'scenario "wrong on purpose": lookup-entity doc#view@user:2 -> expected: [2], got: [2, 3]',
        'scenario "wrong on purpose": lookup-subject doc:1#edit@user with context '
        "-> expected: [1], got: [1, 7]",
        'scenario "wrong on purpose": subject-permission doc:3@user:1 only_permission '
        "-> expected: {view: DENIED}, got: {edit: DENIED, view: ALLOWED}",
    ]
    assert failures[0] == Failure(
        "wrong on purpose", "check doc:1#edit@user:1", "DENIED", "ALLOWED"
    )


def test_engine_errors_and_too_small_depths_fail_only_their_assertion(
    tmp_path: Path, store_factory: StoreFactory
) -> None:
    _, failures, assertions = _run(
        tmp_path,
        store_factory,
        """\
        scenarios:
          - name: errors
            checks:
              - entity: doc:1
                subject: user:1
                depth: 2
                assertions: {view: true}
              - entity: doc:1
                subject: user:1
                assertions: {nope: false, view: true}
              - entity: page:1
                subject: user:1
                assertions: {view: false}
        """,
    )
    assert assertions == 4
    assert [(f.query, f.expected) for f in failures] == [
        ("check doc:1#view@user:1", "ALLOWED"),
        ("check doc:1#nope@user:1", "DENIED"),
        ("check page:1#view@user:1", "DENIED"),
    ]
    assert failures[0].got == "error: depth must be greater than or equal to 3"
    assert all(f.got.startswith("error: ") for f in failures)


def test_lookups_follow_x_page_size_pages_and_concatenate(
    tmp_path: Path, store_factory: StoreFactory
) -> None:
    owned = "".join(f"  - doc:{i}#owner@user:5\n" for i in range(1, 8))
    _, failures, assertions = _run(
        tmp_path,
        store_factory,
        """\
        scenarios:
          - name: paging
            entity_filters:
              - entity_type: doc
                subject: user:5
                x_page_size: 2
                assertions: {edit: ["1", "2", "3", "4", "5", "6", "7"]}
              - entity_type: doc
                subject: user:5
                x_page_size: 3
                assertions: {edit: ["1", "2"]}
            subject_filters:
              - subject_reference: user
                entity: doc:2
                x_page_size: 1
                assertions: {edit: ["5"]}
        """,
        data=f"relationships:\n{owned}",
    )
    assert assertions == 3
    assert [str(f) for f in failures] == [
        'scenario "paging": lookup-entity doc#edit@user:5 page_size 3 '
        "-> expected: [1, 2], got: [1, 2, 3, 4, 5, 6, 7]"
    ]


def test_paging_follows_cursors_and_refuses_contract_violations() -> None:
    pages = {"": LookupPage(("1", "2"), "a"), "a": LookupPage(("3",), "")}
    asked: list[tuple[int, str]] = []

    def fetch(size: int, cursor: str) -> LookupPage:
        asked.append((size, cursor))
        return pages[cursor]

    assert _lookup_all(fetch, 2) == ["1", "2", "3"]
    assert asked == [(2, ""), (2, "a")]
    with pytest.raises(_PagingError, match="cursor 'a' came back twice"):
        _lookup_all(lambda size, cursor: LookupPage(("1",), "a"), 5)
    with pytest.raises(_PagingError, match="a page held 2 ids, more than page_size 1"):
        _lookup_all(fetch, 1)


def test_x_scope_is_passed_to_lookup_entity(tmp_path: Path, store_factory: StoreFactory) -> None:
    _, failures, _ = _run(
        tmp_path,
        store_factory,
        """\
        scenarios:
          - name: scope
            entity_filters:
              - entity_type: doc
                subject: user:2
                x_scope: {doc: ["3"]}
                assertions: {view: ["3"]}
        """,
    )
    assert failures == []


def test_x_expand_is_compared_exactly(tmp_path: Path, store_factory: StoreFactory) -> None:
    _, failures, assertions = _run(
        tmp_path,
        store_factory,
        """\
        scenarios:
          - name: expand
            x_expand:
              - entity: doc:1
                assertions:
                  owner:
                    entity: {type: doc, id: "1"}
                    permission: owner
                    leaf: {subjects: {subjects: [{type: user, id: "2"}]}}
        """,
    )
    assert assertions == 1
    (failure,) = failures
    assert failure.query == "expand doc:1#owner"
    assert failure.expected == (
        '{"entity":{"id":"1","type":"doc"},"leaf":{"subjects":{"subjects":'
        '[{"id":"2","type":"user"}]}},"permission":"owner"}'
    )
    assert failure.got != failure.expected


def test_invalid_relationships_abort_with_permifys_code(
    tmp_path: Path, store_factory: StoreFactory
) -> None:
    path = _file(
        tmp_path,
        SCHEMA
        + """\
relationships:
  - doc:1#owner@user:1
  - doc:1#view@user:1
  - doc:1#owner@group:1
attributes:
  - doc:1$public|string:yes
""",
    )
    with pytest.raises(ValidationFileError) as caught:
        validate_file(path, store_factory=store_factory)
    assert [line.removeprefix(f"{path}:") for line in caught.value.lines] == [
        "16:5: relationships[1]: ERROR_CODE_RELATION_DEFINITION_NOT_FOUND: tuple "
        "doc:1#view@user:1: `view` is a permission, not a relation, on entity `doc`; "
        "its relations: owner",
        "17:5: relationships[2]: ERROR_CODE_SUBJECT_TYPE_NOT_FOUND: tuple doc:1#owner@group:1: "
        "subject type `group` is not allowed in `doc#owner`, which admits: group#member, user",
        "19:5: attributes[0]: ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH: attribute "
        "doc:1$public|string:yes: `doc#public` is declared `boolean`, the value is `string`",
    ]


def test_x_unvalidated_relationships_are_written_as_is_and_followed(
    tmp_path: Path, store_factory: StoreFactory
) -> None:
    _, failures, assertions = _run(
        tmp_path,
        store_factory,
        """\
        x_unvalidated_relationships:
          - tuple: doc:9#owner@doc:2#edit
            error: ERROR_CODE_SUBJECT_TYPE_NOT_FOUND
        scenarios:
          - name: leftovers
            checks:
              - entity: doc:9
                subject: user:2
                assertions: {edit: true}
              - entity: doc:9
                subject: user:1
                assertions: {edit: false}
        """,
    )
    assert (failures, assertions) == ([], 2)


def test_relationships_beyond_one_write_batch_are_all_written(
    tmp_path: Path, store_factory: StoreFactory
) -> None:
    many = "".join(f"  - group:1#member@user:{i}\n" for i in range(2500))
    _, failures, _ = _run(
        tmp_path,
        store_factory,
        """\
        scenarios:
          - name: batches
            checks:
              - entity: doc:2
                subject: user:0
                assertions: {edit: true}
              - entity: doc:2
                subject: user:2499
                assertions: {edit: true}
        """,
        data=f"relationships:\n  - doc:2#owner@group:1#member\n{many}",
    )
    assert failures == []


# --- coverage -------------------------------------------------------------------------------

COVERAGE = """\
schema: |
  entity user {}

  entity folder {
      relation viewer @user
  }

  entity doc {
      relation parent @folder
      relation owner @user @folder#viewer
      attribute public boolean
      attribute tags string[]
      permission view = owner or parent.viewer or public
      permission edit = owner
      permission delete = owner
  }
relationships:
  - doc:1#parent@folder:1#...
  - doc:1#owner@user:1
attributes:
  - doc:1$public|boolean:true
scenarios:
  - name: one
    checks:
      - entity: doc:1
        subject: user:1
        assertions: {view: true}
    entity_filters:
      - entity_type: doc
        subject: user:1
        assertions: {edit: ["1"]}
    subject_filters:
      - subject_reference: user
        entity: doc:1
        assertions: {delete: ["1"]}
  - name: two
"""


def test_coverage_counts_per_entity_and_averages_totals(tmp_path: Path) -> None:
    shape = load_shape(_file(tmp_path, COVERAGE))
    report = coverage(shape, compile_shape_schema(shape))
    by_name = {e.entity: e for e in report.entities}
    assert [e.entity for e in report.entities] == ["user", "folder", "doc"]
    doc = by_name["doc"]
    assert (doc.relationships, doc.uncovered_relationships) == (66, ("doc#owner@folder#viewer",))
    assert (doc.attributes, doc.uncovered_attributes) == (50, ("doc#tags",))
    assert [(s.scenario, s.percent, s.uncovered) for s in doc.assertions] == [
        ("one", 66, ("doc#delete",)),
        ("two", 0, ("doc#view", "doc#edit", "doc#delete")),
    ]
    assert (by_name["folder"].relationships, by_name["user"].relationships) == (0, 100)
    assert (report.relationships, report.attributes, report.assertions) == (55, 83, 77)
    assert report.below(relationships=55, attributes=83, assertions=77) == []
    assert report.below(relationships=56) == [
        "relationships coverage 55% is below the required 56%"
    ]


def test_coverage_of_a_file_without_scenarios(tmp_path: Path) -> None:
    text = COVERAGE[: COVERAGE.index("scenarios:")]
    shape = load_shape(_file(tmp_path, text))
    report = coverage(shape, compile_shape_schema(shape))
    assert [s.percent for e in report.entities for s in e.assertions] == [100, 100, 0]
    assert report.assertions == 66


# --- the commands ---------------------------------------------------------------------------


def _invoke(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output.splitlines()


def test_cli_validate_prints_success_per_file(tmp_path: Path) -> None:
    good = _file(
        tmp_path,
        SCHEMA + DATA + "scenarios:\n  - name: s\n    checks:\n      - entity: doc:1\n"
        "        subject: user:1\n        assertions: {view: true}\n",
    )
    code, lines = _invoke("validate", str(good), str(good))
    assert code == 0
    assert lines == [f"{good}: SUCCESS (1 scenarios, 1 assertions)"] * 2


def test_cli_validate_prints_each_failure_and_exits_1(tmp_path: Path) -> None:
    bad = _file(
        tmp_path,
        SCHEMA + DATA + "scenarios:\n  - name: s\n    checks:\n      - entity: doc:1\n"
        "        subject: user:2\n        assertions: {view: true, edit: false}\n",
    )
    code, lines = _invoke("validate", str(bad))
    assert code == 1
    assert lines == [
        f'{bad}: scenario "s": check doc:1#view@user:2 -> expected: ALLOWED, got: DENIED',
        f"{bad}: FAILED (1 of 2 assertions failed; 1 scenarios, 2 assertions)",
    ]


def test_cli_validate_reports_schema_errors_as_file_line_col(tmp_path: Path) -> None:
    broken = _file(tmp_path, "schema: |\n" + textwrap.indent(BROKEN, "  "), "broken.yaml")
    missing = tmp_path / "missing.yaml"
    code, lines = _invoke("validate", str(broken), str(missing))
    assert code == 1
    assert lines[0].startswith(f"{broken}:6:25: `ownr` is not a relation")
    assert lines[1:] == [
        f"{broken}: FAILED",
        f"{missing}: cannot read: No such file or directory",
        f"{missing}: FAILED",
    ]


def test_cli_coverage_prints_the_report_and_applies_thresholds(tmp_path: Path) -> None:
    path = _file(tmp_path, COVERAGE)
    code, lines = _invoke("coverage", str(path))
    assert code == 0
    assert f"{path}: entity doc: attributes 50%, uncovered: doc#tags" in lines
    assert f'{path}: entity doc: assertions 66% in scenario "one", uncovered: doc#delete' in lines
    assert lines[-1] == f"{path}: total: relationships 55%, attributes 83%, assertions 77%"
    code, lines = _invoke(
        "coverage", str(path), "--coverage-assertions", "78", "--coverage-attributes", "83"
    )
    assert code == 1
    assert lines[-1] == f"{path}: FAILED: assertions coverage 77% is below the required 78%"
    assert _invoke("coverage", str(path), "--coverage-relationships", "101")[0] == 2
