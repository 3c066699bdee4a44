"""A server's async context entered on an event loop in a thread of its own.

Browser tests drive Selenium, which blocks; the servers they look at run on an
asyncio loop. `LoopThread` enters the servers' context manager on a loop in a
background thread and hands its value to the blocking test::

    with LoopThread(lambda: console_running(site, tmp), name="console") as site:
        driver.get(site.url)
        soc = thread.call(read_soc(site))         # a coroutine, on the servers' loop
        thread.run(lambda: site.advance(15))      # a plain call, on the servers' loop
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


class LoopThread(Generic[_T]):
    """`enter()` on a loop in a thread, from `with` to its end."""

    def __init__(
        self,
        enter: Callable[[], AbstractAsyncContextManager[_T]],
        *,
        name: str,
        ready_s: float,
        call_s: float,
    ) -> None:
        """Enter within `ready_s` at `with`; each `call`/`run` answers within `call_s`."""
        self._enter = enter
        self._name = name
        self._ready_s = ready_s
        self._call_s = call_s
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.site: _T | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with self._enter() as site:
                self.site = site
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as error:  # reported to the test
            self._error = error
        finally:
            self._ready.set()

    def __enter__(self) -> _T:
        self._thread.start()
        self._ready.wait(self._ready_s)
        if self.site is None:
            raise RuntimeError(f"the {self._name} did not start: {self._error!r}")
        return self.site

    def call(self, coroutine: Coroutine[Any, Any, _R]) -> _R:
        """Run `coroutine` on the servers' loop; return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(self._call_s)

    def run(self, function: Callable[[], _R]) -> _R:
        """Run `function()` on the servers' loop; return its result."""

        async def run() -> _R:
            return function()

        return self.call(run())

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
