"""The one cache helper: bounded caches from ``cachetools``.

Use ``LRUCache`` / ``TTLCache`` directly where only the event loop touches a cache;
:class:`SharedLRU` adds the lock that caches shared with pool threads need (cachetools' caches
are not thread-safe). On hot paths read with ``cache[key]`` in a ``try``: ``cache.get`` checks
membership first and costs several times more on a ``TTLCache``.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache, TTLCache

__all__ = ["LRUCache", "SharedLRU", "TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedLRU(Generic[K, V]):
    """A least-recently-used map of at most ``maxsize`` entries, safe to use from several threads."""

    def __init__(self, maxsize: int) -> None:
        self._cache: LRUCache[K, V] = LRUCache(maxsize)
        self._lock = threading.Lock()

    @property
    def maxsize(self) -> int:
        return int(self._cache.maxsize)

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._cache.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._cache[key] = value

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
