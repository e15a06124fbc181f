"""The scaled-out settings against the real services: channels-redis consumers survive being
idle (redis-py 8's 5 s socket timeout, channels_redis#422), and DATABASE_URL runs the
migrations and the ORM on PostgreSQL."""

import asyncio
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from channels.layers import get_channel_layer

from mqant.project import redis_channel_layer
from mqantsite import settings as settings_module

ROOT = Path(__file__).resolve().parents[2]


async def test_idle_consumers_survive_past_the_redis_socket_timeout(settings, redis_space):
    """A receive that waits longer than redis-py 8's default 5 s socket timeout still gets its
    message, on both layers."""

    async def idle_then_receive(kind: str) -> Any:
        settings.CHANNEL_LAYERS = {
            "default": redis_channel_layer(redis_space.url, kind, redis_space.prefix),
            kind: redis_channel_layer(redis_space.url, kind, redis_space.prefix + kind),
        }
        layer = get_channel_layer(kind)
        channel = await layer.new_channel()
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(6.5)
        await layer.send(channel, {"type": "test.wake", "kind": kind})
        try:
            async with asyncio.timeout(5):
                return await receiving
        finally:
            await layer.flush()

    results = await asyncio.gather(idle_then_receive("core"), idle_then_receive("pubsub"))
    assert list(results) == [
        {"type": "test.wake", "kind": "core"},
        {"type": "test.wake", "kind": "pubsub"},
    ]


def test_redis_layer_names_are_checked():
    with pytest.raises(ValueError, match="The Redis layer must be one of"):
        redis_channel_layer("redis://127.0.0.1:6379/0", "streams")
    with pytest.raises(ValueError, match="The Redis prefix must use"):
        redis_channel_layer("redis://127.0.0.1:6379/0", "core", "a b")


def test_database_url_migrates_and_runs_the_orm_on_postgresql(postgres_url, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mqantsite.settings",
        "DATABASE_URL": postgres_url,
        "SQLITE_PATH": str(tmp_path / "unused.sqlite3"),
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run(
        [*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    script = textwrap.dedent(
        """
        from django.db import connection
        from mqant.accounts import login_sync
        login_sync(username="pg-user", password="pg-pass-4417", ip="", auto_register=True)
        user = login_sync(username="pg-user", password="pg-pass-4417", ip="")
        print(connection.vendor, connection.settings_dict["NAME"], user.get_username())
        """
    )
    out = subprocess.run(
        [*manage, "shell", "-c", script],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert out.stdout.splitlines()[-1].split() == [
        "postgresql",
        postgres_url.rsplit("/", 1)[1],
        "pg-user",
    ]
    assert not (tmp_path / "unused.sqlite3").exists()


def test_every_environment_variable_the_settings_read_is_documented():
    source = (ROOT / "mqantsite" / "settings.py").read_text()
    documented = settings_module.__doc__ or ""
    read = set(re.findall(r'os\.environ(?:\.get\(|\[)"([A-Z_]+)"', source))
    assert read, "no environment variable found: the pattern is out of date"
    assert {name for name in read if name not in documented} == set()
