from django.apps import AppConfig


class HelloWorldConfig(AppConfig):
    name = "helloworld"
    verbose_name = "HelloWorld module"

    def ready(self) -> None:
        from helloworld import modules  # noqa: F401 - registers the module
