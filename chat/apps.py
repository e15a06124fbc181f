from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat module"

    def ready(self) -> None:
        from chat import modules  # noqa: F401 - registers the module
