"""Test support: coroutine tests with a deadline, and a backend tripwire.

Coroutine tests run on a fresh event loop (no pytest-asyncio needed). `Tripwire` stands
where the exchange backend goes in tests of what the edge must refuse on its own: any call
fails the test, so these tests prove that a refused request never reached the exchange.
"""

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


class Tripwire:
    """Stands where the backend goes, and refuses to be used."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the edge reached backend.{name}")
