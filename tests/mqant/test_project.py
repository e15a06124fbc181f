"""mqant.project: the settings helpers a project's settings.py calls before Django is set up."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mqant import project

ROOT = Path(__file__).resolve().parents[2]


def test_it_imports_before_django_is_configured():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    script = (
        "from mqant import project; "
        "print(project.channel_layers('')['default']['BACKEND'], project.INSTALLED_APPS)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert out.stdout.split()[0] == "channels.layers.InMemoryChannelLayer"


def test_without_redis_everything_stays_in_the_process():
    assert project.channel_layers("")["default"]["CONFIG"] == {"capacity": 1000}
    assert project.caches(None)["default"]["BACKEND"].endswith("LocMemCache")
    assert project.registry("") == {"BACKEND": "mqant.registry.NodeRegistry", "CONFIG": {}}


def test_with_redis_every_part_shares_one_url_and_prefix():
    url = "redis://127.0.0.1:6379/3"
    layer = project.channel_layers(url, prefix="shop")["default"]
    assert layer["BACKEND"] == "mqant.redis.layer.RedisPubSubChannelLayer"
    (host,) = layer["CONFIG"]["hosts"]
    assert host["address"] == url
    assert host["socket_timeout"] is None  # channels_redis#422: no client-side timeout
    assert host["socket_keepalive"] is True
    assert host["max_connections"] == 1000
    assert layer["CONFIG"]["prefix"] == "shop.asgi."
    cache = project.caches(url, prefix="shop")["default"]
    assert (cache["LOCATION"], cache["KEY_PREFIX"]) == (url, "shop")
    assert project.registry(url, prefix="shop")["CONFIG"] == {"url": url, "prefix": "shop"}
    core = project.channel_layers(url, kind="core")["default"]
    assert core["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert core["CONFIG"]["capacity"] == 1000


@pytest.mark.parametrize("call", [project.caches, project.registry, project.channel_layers])
def test_a_prefix_that_could_collide_is_refused(call):
    with pytest.raises(ValueError, match="The Redis prefix must use"):
        call("redis://127.0.0.1:6379/0", prefix="a b")


def test_databases_from_a_url_or_sqlite_set_for_a_server(tmp_path):
    sqlite = project.database("", tmp_path / "db.sqlite3")
    assert sqlite["NAME"] == str(tmp_path / "db.sqlite3")
    assert "journal_mode=WAL" in sqlite["OPTIONS"]["init_command"]
    assert sqlite["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    pg = project.database("postgres://u:secret@db.internal:5432/shop", tmp_path / "unused")
    assert (pg["ENGINE"], pg["NAME"], pg["HOST"]) == (
        "django.db.backends.postgresql",
        "shop",
        "db.internal",
    )
    assert pg["CONN_MAX_AGE"] == 60
    assert pg["CONN_HEALTH_CHECKS"] is True
