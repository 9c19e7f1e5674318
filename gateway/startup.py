"""The app's start: its imports run without the cyclic garbage collector.

Importing the app allocates hundreds of thousands of objects (modules, classes, pydantic and
regex caches) that live as long as the process and hold no garbage; the collector, triggered
every few hundred allocations, would scan them again and again (about a tenth of the import's
CPU time here). They are frozen out of its reach afterwards (``gc.freeze``), so later full
collections during requests do not walk them either.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def uncollected_imports() -> Iterator[None]:
    """Pause the collector for the block; then freeze what exists and resume it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
