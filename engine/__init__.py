"""The permission engine: check, lookups, expand and rules over a storage snapshot.

Start at `engine.engine.Engine` (the facade) and `engine.check` (the dispatcher).
"""
