"""The patterns identifiers must match, defined once for every layer.

Regular-expression sources (no anchors), so each user anchors or compiles them as it needs:
`re.fullmatch` in Python, ``^...$`` in the API's JSON-schema patterns.
"""

from __future__ import annotations

#: Entity types, relations, permissions, attribute and rule names: the schema language's names.
NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
NAME_RULE = "letters, digits and `_`, not starting with a digit, at most 64 characters"
#: One character of an entity id, a subject id or a tenant id (Permify's set).
ID_CHARACTER = r"[A-Za-z0-9_\-@.:+]"
#: Entity ids and tenant ids.
ENTITY_ID = ID_CHARACTER + "{1,128}"
TENANT_ID = ENTITY_ID
#: Subject ids: an entity id, or ``*`` alone (every subject of the type).
SUBJECT_ID = ENTITY_ID + r"|\*"
ID_RULE = "1 to 128 characters from letters, digits and _ - @ . : +, or `*` alone"
