from django.apps import AppConfig


class ProbeConfig(AppConfig):
    """A module for end-to-end tests: each Session operation behind an HD_ handler, and the
    connection events it was told about. Loaded into a test server with MQANT_EXTRA_APPS."""

    name = "tests.e2e.probe"
    label = "probe"

    def ready(self) -> None:
        from tests.e2e.probe import modules  # noqa: F401 - registers the module
