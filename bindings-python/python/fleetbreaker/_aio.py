"""Completion of asyncio futures from the native runtime's thread."""

from __future__ import annotations

import asyncio
from typing import Any, Optional


def resolve(future: "asyncio.Future[Any]", ok: bool, payload: Any, events: Optional[Any] = None) -> None:
    """Runs on the event loop's thread: delivers the call's events to their hooks, then sets
    ``future``'s result (or exception), unless its awaiting task was cancelled meanwhile. A
    result nobody takes is dropped here, which releases a probe permit it carried."""
    if events is not None:
        events.deliver()
    if future.done():
        return
    if ok:
        future.set_result(payload)
    else:
        future.set_exception(payload)
