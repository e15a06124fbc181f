"""Fixtures shared by the whole suite."""

import os
from collections.abc import AsyncIterator

import pytest
from channels.layers import get_channel_layer

from mqant import app as mqant_app


def require_service(name: str, reason: str) -> None:
    """Skip a test whose service is missing, except in CI, where that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


@pytest.fixture
async def mqant_started() -> AsyncIterator[mqant_app.App]:
    """The modules of this process, started in the test's event loop and stopped after it."""
    app = await mqant_app.ensure_started()
    yield app
    await mqant_app.stop()
    await get_channel_layer().flush()
