"""The scenario both gRPC clients run (grpcio here, Permify's Node.js SDK in node/scenario.js):
one schema, one set of tuples, and the answers every question about them must get."""

from __future__ import annotations

SCHEMA = """
entity user {}

entity team {
    relation member @user
}

entity doc {
    relation owner  @user
    relation viewer @user @team#member
    attribute public boolean
    permission edit = owner
    permission view = viewer or edit
}
"""

#: Written in one write, in this order.
TUPLES = [
    "team:eng#member@user:ann",
    "doc:1#viewer@team:eng#member",
    "doc:1#owner@user:bob",
    "doc:2#viewer@user:ann",
    "doc:3#owner@user:ann",
]
#: Written by a second write, which a watch started after the first must report.
LATER_TUPLE = "doc:4#viewer@user:cid"

CHECKS = [
    ("doc:1", "view", "user:ann", True),
    ("doc:1", "edit", "user:ann", False),
    ("doc:1", "edit", "user:bob", True),
    ("doc:3", "view", "user:ann", True),
]
LOOKUP_ENTITY = ("doc", "view", "user:ann", ["1", "2", "3"])
LOOKUP_SUBJECT = ("doc:1", "view", "user", ["ann", "bob"])
SUBJECT_PERMISSION = (
    "doc:1",
    "user:ann",
    {
        "edit": "CHECK_RESULT_DENIED",
        "view": "CHECK_RESULT_ALLOWED",
        "owner": "CHECK_RESULT_DENIED",
        "viewer": "CHECK_RESULT_ALLOWED",  # through team:eng#member
    },
)
#: Reading every `doc` tuple two at a time: the pages' sizes.
READ_PAGES = [2, 2]
