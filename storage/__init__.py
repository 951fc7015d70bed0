"""Tuples, attributes, schemas and records at snapshots: the `Store` protocol and its backends.

Importing this package first runs the compiled-modules guard (`storage.compiled`), before any
module that may be compiled loads.
"""

from storage import compiled as compiled
