"""What only a serving process (`oauth-facade serve`) adds to the application."""

from __future__ import annotations

import gc
from typing import Any

from proxy.serve import YOUNG_GENERATION_THRESHOLD, serving_app
from proxy.settings import Settings
from tests.conftest import free_port


async def test_a_started_facade_has_frozen_its_start_up_heap(aiohttp_server: Any) -> None:
    """Once the served app has started, what start-up built sits in the permanent GC generation, so the
    full collections that load triggers no longer walk it (bench/README: refresh)."""
    port = free_port()
    settings = Settings(_env_file=None, issuer=f"http://127.0.0.1:{port}", port=port)  # type: ignore[call-arg]
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        await aiohttp_server(serving_app(settings), port=port)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


async def test_a_started_facade_collects_its_young_generation_less_often(aiohttp_server: Any) -> None:
    """The served app raises the young generation's threshold from CPython's 700 (a collection every
    ~30 requests) and keeps the older generations' (bench/README: garbage collection)."""
    port = free_port()
    settings = Settings(_env_file=None, issuer=f"http://127.0.0.1:{port}", port=port)  # type: ignore[call-arg]
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        await aiohttp_server(serving_app(settings), port=port)
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, 10, 10)
        assert YOUNG_GENERATION_THRESHOLD > 700
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
