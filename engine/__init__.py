"""The permission engine: check, lookups, expand and rules over a storage snapshot.

Start at `engine.engine.Engine`; `engine.validate` runs Permify validation files.
"""
