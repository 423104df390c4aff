"""The server freezes what start-up built, so the collector's full passes skip it."""

from __future__ import annotations

import gc

from justice.platform.server import freeze_heap


def test_start_up_objects_leave_the_collectors_full_passes() -> None:
    built = [[] for _ in range(1000)]  # containers start-up made and keeps: tracked by gc
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(built)
        # Collected but not frozen, they would sit in the oldest generation, walked by every
        # full pass.
        oldest = {id(o) for o in gc.get_objects(generation=2)}
        assert not any(id(b) in oldest for b in built)
    finally:
        gc.unfreeze()
