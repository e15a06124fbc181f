from django.apps import AppConfig


class LoginConfig(AppConfig):
    name = "login"
    verbose_name = "Login module"

    def ready(self) -> None:
        from login import modules  # noqa: F401 - registers the module
