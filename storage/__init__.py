"""Tuples, attributes, schemas and records at snapshots: the `Store` protocol and its backends.
"""
