from django.apps import AppConfig


class MqantConfig(AppConfig):
    name = "mqant"
    verbose_name = "mqant framework"

    def ready(self) -> None:
        from mqant import config

        # Refuse to start on an invalid deployment file (an Id used twice, a module type twice
        # on one ProcessID...), whatever the process: daphne, uvicorn or manage.py.
        config.load()
