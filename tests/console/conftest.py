"""Fixtures of the console's httpx tests: the real app over ASGI (one per module)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from broker.app import create_app
from broker.runtime import Broker


@pytest.fixture(scope="module")
async def transport(broker: Broker) -> AsyncIterator[httpx.ASGITransport]:
    yield httpx.ASGITransport(app=create_app(broker, background=False, migrate=False))
