from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class MqantConfig(AppConfig):
    name = "mqant"
    verbose_name = "mqant framework"

    def ready(self) -> None:
        from mqant import config

        # Each installed app's modules.py registers its module classes, as admin.py does
        # for the admin: an app needs no ready() of its own.
        autodiscover_modules("modules")
        # Refuse to start on an invalid deployment file (an Id used twice, a module type twice
        # on one ProcessID...), whatever the process: daphne, uvicorn or manage.py.
        config.load()
