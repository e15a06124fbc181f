"""A server process's start is frozen out of the garbage collector's full collections
(gc.freeze) once it is over, after its garbage was collected, and given back at stop."""

import gc
import sqlite3
import weakref
from typing import Any

from mqant import runtime


class Holder:
    """Garbage in a cycle, holding a resource until the collector frees it."""

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self.me = self


async def test_the_start_is_frozen_without_its_garbage(settings: Any) -> None:
    gc.unfreeze()
    await runtime.start()
    gc.disable()  # no collection of its own between the garbage and the freeze
    try:
        garbage = weakref.ref(Holder(sqlite3.connect(":memory:")))
        assert garbage() is not None  # garbage, not yet collected
        runtime.freeze_start()
        assert gc.get_freeze_count() > 0
        assert garbage() is None  # collected, not frozen with its connection
    finally:
        gc.enable()
        await runtime.stop()
    assert gc.get_freeze_count() == 0


async def test_the_freeze_may_be_turned_off(settings: Any) -> None:
    settings.MQANT = {**settings.MQANT, "GC_FREEZE": False}
    gc.unfreeze()
    await runtime.start()
    try:
        runtime.freeze_start()
        assert gc.get_freeze_count() == 0
    finally:
        await runtime.stop()
