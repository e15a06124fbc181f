"""A started runtime keeps what the process made at start out of the garbage collector's
full collections (gc.freeze), and gives it back at stop."""

import gc
from typing import Any

from mqant import runtime


async def test_the_start_is_frozen_while_the_runtime_runs(settings: Any) -> None:
    gc.unfreeze()
    await runtime.start()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        await runtime.stop()
    assert gc.get_freeze_count() == 0


async def test_the_freeze_may_be_turned_off(settings: Any) -> None:
    settings.MQANT = {**settings.MQANT, "GC_FREEZE": False}
    gc.unfreeze()
    await runtime.start()
    try:
        assert gc.get_freeze_count() == 0
    finally:
        await runtime.stop()
