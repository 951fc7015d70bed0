"""The permission engine: check, lookups, expand and rules over a storage snapshot.

Start at `engine.engine.Engine` (the facade) and `engine.check` (the dispatcher). Importing this
package first runs the compiled-modules guard (`storage.compiled`), since some of its modules
may be compiled.
"""

import storage.compiled as _compiled  # noqa: F401  (the guard, before any engine module)
