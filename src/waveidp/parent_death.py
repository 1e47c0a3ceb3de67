"""Processes Wave starts (engines, gateway workers, the engine keeper) die with their parent."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child: get SIGTERM when the parent dies, even by SIGKILL, so nothing is orphaned (Linux;
    elsewhere a no-op). Safe in a `preexec_fn` and right after `os.fork()`."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
