"""Where Redis failures become a protocol error: `StoreUnavailable` (503), for the store and its indexes."""

from __future__ import annotations

from redis.exceptions import RedisError

from proxy.errors import StoreUnavailable


class redis_errors:
    """The one seam where Redis failures become a protocol error (httpx maps its transport the same way).

    A plain (not async) context manager around the awaits of an operation: it runs around every Redis
    command, and entering and leaving need no await (an async one creates two coroutines each time, a
    generator-based one costs four times as much)."""

    __slots__ = ("operation",)

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, RedisError | OSError | TimeoutError):
            raise StoreUnavailable(detail=f"{self.operation}: {type(exc).__name__}: {exc}") from exc
        return False
