"""Helpers of the API tests: Permify's wire shapes from the string forms, the server's
request counts, and a clock the test moves."""

from __future__ import annotations

import time
from typing import Any

import httpx


def entity_json(text: str) -> dict[str, str]:
    """``type:id`` as the wire's Entity."""
    kind, id_ = text.split(":")
    return {"type": kind, "id": id_}


def subject_json(text: str) -> dict[str, str]:
    """``type:id[#relation]`` as the wire's Subject."""
    ref, _, relation = text.partition("#")
    return {**entity_json(ref), "relation": relation}


def tuple_json(text: str) -> dict[str, Any]:
    """``type:id#relation@type:id[#relation]`` as the wire's Tuple."""
    entity, subject = text.split("@")
    entity_ref, relation = entity.split("#")
    return {
        "entity": entity_json(entity_ref),
        "relation": relation,
        "subject": subject_json(subject),
    }


def tuple_text(t: dict[str, Any]) -> str:
    """The wire's Tuple back in the string form."""
    e, s = t["entity"], t["subject"]
    suffix = f"#{s['relation']}" if s["relation"] else ""
    return f"{e['type']}:{e['id']}#{t['relation']}@{s['type']}:{s['id']}{suffix}"


def finished_requests(client: httpx.Client, route: str) -> dict[str, float]:
    """How many requests to ``route`` (its path template) the server has finished, by status,
    read from ``/metrics``."""
    label = f'route="{route}"'
    counts = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("stonetown_http_requests_total{") and label in line:
            status = line.split('status="')[1].split('"')[0]
            counts[status] = float(line.rsplit(" ", 1)[1])
    return counts


class Clock:
    """A clock the test moves by hand (seconds since the epoch), starting at the real now."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: float) -> None:
        self.now = moment
