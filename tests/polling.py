"""Waiting for a condition with a deadline: the one polling helper of the tests (never a bare
sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    within: float = 5.0,
    every: float = 0.01,
    *,
    what: str | None = None,
) -> float:
    """Seconds until `check()` holds, asking every `every` seconds; `check` returns a bool or an
    awaitable bool. Past `within` seconds an AssertionError names what was awaited (`what`, or
    the check's name and where it is written)."""
    started = time.monotonic()
    while True:
        held = check()
        if inspect.isawaitable(held):
            held = await held
        waited = time.monotonic() - started
        if held:
            return waited
        if waited >= within:
            raise AssertionError(
                f"not reached within {within} s ({waited:.2f} s waited): {what or _named(check)}"
            )
        await asyncio.sleep(every)


def _named(check: Callable[..., object]) -> str:
    """The check's qualified name, and for a function its source line and file:line."""
    name = getattr(check, "__qualname__", None) or repr(check)
    code = getattr(check, "__code__", None)
    if code is None:
        return name
    where = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}"
    try:
        source = inspect.getsourcelines(code)[0][0].strip()
    except (OSError, TypeError, IndexError):
        return f"{name} ({where})"
    return f"{name} `{source}` ({where})"
