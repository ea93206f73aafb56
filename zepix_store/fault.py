"""Named fault points for the crash tests: inert unless ZEPIX_FAULT is set.

ZEPIX_FAULT=<point>:<action>, action `kill` (SIGKILL this process), `raise` (OSError ENOSPC) or `exit`
(os._exit(70)). Points are named where work crosses a step boundary, e.g. `after_alter:trades`.
"""

from __future__ import annotations

import errno
import os
import signal

__all__ = ["ENV", "point"]

ENV = "ZEPIX_FAULT"


def point(name: str) -> None:
    """Trigger the configured fault if `name` is the configured point."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    where, _, action = spec.rpartition(":")
    if where != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise OSError(errno.ENOSPC, f"injected fault at {name}")
    elif action == "exit":
        os._exit(70)
