"""Building request bodies in the tests: Permify's wire shapes from the string forms."""

from __future__ import annotations

from typing import Any


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
