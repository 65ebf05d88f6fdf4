"""Completion of asyncio futures from the native runtime's thread."""

from __future__ import annotations

import asyncio
from typing import Any


def resolve(future: "asyncio.Future[Any]", ok: bool, payload: Any) -> None:
    """Sets ``future``'s result (or exception), unless its awaiting task was cancelled."""
    if future.done():
        return
    if ok:
        future.set_result(payload)
    else:
        future.set_exception(payload)
