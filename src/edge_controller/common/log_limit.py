"""One log line per problem and interval, the repeats counted instead of printed.

A problem that repeats — a cache the disk refuses on every dispatch change, a client
that sends a wrong API key a thousand times a minute — must not flood the journal:
journald rate-limits a service as a whole (10 000 lines in 30 s by default), so a
flood also drowns the lines that matter, and an attacker who can make us log can
make us write. `LogLimiter` decides per key (the cache's path, a peer's address):

```
t=0    failure  -> log it                        admit() -> 0
t=1..  failure  -> counted, not logged           admit() -> None
t=60   failure  -> log it, with suppressed=41    admit() -> 41
t=61   success  -> the caller logs a summary     clear() -> 17 (counted since t=60)
```

Pure: time comes from an injected monotonic clock. Bounded: at most `max_keys`
keys are remembered (the least recently logged are forgotten first), so a flood
from ever new addresses costs memory in proportion to `max_keys`, not to the flood.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Streak:
    logged_at: float
    suppressed: int = 0


class LogLimiter:
    """Decides, per key, whether a repeat of a problem is logged or only counted."""

    def __init__(
        self,
        interval_s: float,
        *,
        max_keys: int = 1024,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Log a key at most once per `interval_s`; remember at most `max_keys` keys."""
        if interval_s <= 0 or max_keys < 1:
            raise ValueError("LogLimiter: interval_s must be > 0 and max_keys >= 1")
        self.interval_s = interval_s
        self._max_keys = max_keys
        self._monotonic = monotonic
        self._streaks: OrderedDict[Hashable, _Streak] = OrderedDict()

    def admit(self, key: Hashable) -> int | None:
        """Count one occurrence; return None to stay quiet, else the repeats not logged.

        The first occurrence of a key (or the first after `clear`) returns 0; later
        ones return None until `interval_s` has passed since the last logged one,
        which then returns how many were suppressed in between.
        """
        now = self._monotonic()
        streak = self._streaks.get(key)
        if streak is not None and now - streak.logged_at < self.interval_s:
            streak.suppressed += 1
            return None
        suppressed = 0 if streak is None else streak.suppressed
        self._streaks[key] = _Streak(now)
        self._streaks.move_to_end(key)
        while len(self._streaks) > self._max_keys:
            self._streaks.popitem(last=False)
        return suppressed

    def clear(self, key: Hashable) -> int | None:
        """End the key's streak (the problem went away); None if there was none.

        Returns the occurrences not logged since its last logged line, for a summary.
        """
        streak = self._streaks.pop(key, None)
        return None if streak is None else streak.suppressed

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._streaks)


__all__ = ["LogLimiter"]
