"""What only a serving process (`oauth-facade serve`) adds to the application."""

from __future__ import annotations

import gc
from typing import Any

from proxy.serve import serving_app
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
