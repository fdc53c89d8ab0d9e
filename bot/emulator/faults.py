"""Network and server faults injected on demand.

Production bots meet a 429 in the middle of a broadcast, a 5xx from
Telegram's front end, a slow answer or a connection dropped before (or after!)
the request was executed. A test queues such faults here; the HTTP server
takes one per matching call and plays it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["429", "500", "502", "slow", "drop", "drop_after"]
FAULT_KINDS: frozenset[str] = frozenset({"429", "500", "502", "slow", "drop", "drop_after"})

# What nginx in front of api.telegram.org answers when the backend is down: HTML, not JSON.
BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(slots=True)
class Fault:
    """One planned fault. ``method`` None matches every method (getUpdates included)."""

    method: str | None
    kind: str
    remaining: int
    retry_after: int = 1
    delay: float = 1.0

    def matches(self, method: str) -> bool:
        return self.method is None or self.method == method.lower()


class FaultPlan:
    """Faults waiting to happen, taken first-in first-out by matching calls."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()

    def inject(self, method: str | None, kind: str | int, count: int = 1, retry_after: int = 1, delay: float = 1.0) -> Fault:
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = Fault(method.lower() if method else None, kind, count, max(1, int(retry_after)), float(delay))
        self._faults.append(fault)
        return fault

    def take(self, method: str) -> Fault | None:
        if not self._faults:
            return None
        for fault in self._faults:
            if fault.matches(method):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    def pending(self) -> list[Fault]:
        return list(self._faults)
