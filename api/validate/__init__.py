"""Permify validation files ("shapes"): schema, relationships, attributes and scenarios with
their expected answers, as ``permify validate`` reads and runs them.

``shape`` is the parsed file (frozen dataclasses) and the errors that stop it from running;
``loader`` reads the YAML into it (``yaml_nodes`` turns YAML nodes into typed values);
``runner`` runs it on a fresh store its caller's factory makes, and reports each mismatch.
"""

from api.validate.loader import load_shape, parse_shape
from api.validate.runner import (
    Failure,
    Report,
    StoreFactory,
    check_writes,
    compile_shape_schema,
    run,
    validate_file,
)
from api.validate.shape import SchemaFileError, SchemaProblem, Shape, ValidationFileError

__all__ = [
    "Failure",
    "Report",
    "SchemaFileError",
    "SchemaProblem",
    "Shape",
    "StoreFactory",
    "ValidationFileError",
    "check_writes",
    "compile_shape_schema",
    "load_shape",
    "parse_shape",
    "run",
    "validate_file",
]
