"""A module for tests that run ``manage.py runmodules`` in a process of its own: settings
``tests.mqant.probe_settings`` install this app, which registers it."""

import asyncio
from typing import Any

from django.apps import AppConfig

from mqant import Module, Session, register_module


class ProbesConfig(AppConfig):
    name = "tests.mqant"
    label = "mqant_test_probes"


@register_module
class Sleeper(Module):
    module_type = "Sleeper"

    async def on_init(self, settings: dict[str, Any]) -> None:
        await super().on_init(settings)
        self.register_go("echo", self.echo)
        self.register_go("sleep", self.sleep)
        self.register_go("count_users", self.count_users)

    async def echo(self, session: Session, value: Any) -> list[Any]:
        return [session, value, self.node_id]

    async def sleep(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"

    def count_users(self) -> int:
        """A handler that needs the database (in a worker thread, as sync handlers run)."""
        from django.contrib.auth import get_user_model

        return get_user_model().objects.count()
