"""Run a coroutine test on a fresh event loop with a deadline (no pytest-asyncio needed)."""

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

DEADLINE_S = 10.0


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), DEADLINE_S))

    return wrapper
