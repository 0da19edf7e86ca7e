"""Named points where a test can kill this process, to prove a crash there loses nothing.

Ingestion writes several Delta tables per batch (bronze, quarantine, manifest, ...) and no store
gives a transaction across tables. The crash tests (tests/integration/test_crash_recovery.py)
run an import in a subprocess with ``CDP_TEST_CRASH_AT=<point>``; at that point the process
SIGKILLs itself (no cleanup, no finally, like ``kill -9`` or a lost machine), and the test then
checks that the next run completes or rolls back the half-done batch. Unset (always, outside
those tests), a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "CDP_TEST_CRASH_AT"


def crashpoint(name: str) -> None:
    """Die here, at once, if the test hook names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
