"""Permify's data bundles: named, parameterised sets of relationship and attribute changes.

A bundle (``DataBundle``) declares argument names and a list of operations; each operation lists
relationships and attributes to write and to delete as template strings, e.g.
``organization:{{.org}}#admin@user:{{.creator}}``. ``run_bundle`` fills in the arguments and
applies the result to a tenant's data.

The package, in the order a string travels:

    model.py     the bundle and operation values, and the errors
    template.py  the ``{{.argument}}`` template language of one string
    forms.py     strings as components (tuple, attribute, attribute key): literal checks, rendering
    codec.py     checking a bundle when it is written; writing, reading and deleting it
    runner.py    running a bundle: arguments filled in and checked, one atomic write

What callers use is re-exported here.
"""

from engine.bundles.codec import KEYSPACE, MAX_PROBLEMS, delete_bundle, read_bundle, write_bundles
from engine.bundles.forms import (
    ATTRIBUTE,
    ATTRIBUTE_KEY,
    FORMS,
    SEPARATORS,
    TUPLE,
    ArgumentProblem,
    Component,
    Form,
    ItemTemplate,
    Kind,
    Step,
    parse_item,
    render_attribute,
    render_attribute_key,
    render_tuple,
)
from engine.bundles.model import (
    LISTS,
    BundleError,
    BundleNotFound,
    BundleTooLarge,
    DataBundle,
    DuplicateBundle,
    InvalidArgument,
    InvalidBundle,
    MissingArgument,
    Operation,
)
from engine.bundles.runner import run_bundle
from engine.bundles.template import Template

__all__ = [
    "ATTRIBUTE",
    "ATTRIBUTE_KEY",
    "FORMS",
    "KEYSPACE",
    "LISTS",
    "MAX_PROBLEMS",
    "SEPARATORS",
    "TUPLE",
    "ArgumentProblem",
    "BundleError",
    "BundleNotFound",
    "BundleTooLarge",
    "Component",
    "DataBundle",
    "DuplicateBundle",
    "Form",
    "InvalidArgument",
    "InvalidBundle",
    "ItemTemplate",
    "Kind",
    "MissingArgument",
    "Operation",
    "Step",
    "Template",
    "delete_bundle",
    "parse_item",
    "read_bundle",
    "render_attribute",
    "render_attribute_key",
    "render_tuple",
    "run_bundle",
    "write_bundles",
]
