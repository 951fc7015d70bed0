"""The dict-backed reference store: ``MemoryStore`` (``store.py``) and its reader (``reader.py``).

It implements the ``Store`` protocol in the plainest form, as the oracle the conformance suite
checks the LevelDB backend against and as a fast store for engine tests; never the product's.
``versions.py`` holds the version lists, ``pages.py`` the pagination.
"""

from storage.memory.reader import MemoryReader
from storage.memory.store import MemoryStore

__all__ = ["MemoryReader", "MemoryStore"]
