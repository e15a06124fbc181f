from django.apps import AppConfig


class GateConfig(AppConfig):
    name = "gate"
    verbose_name = "MQTT gate"

    def ready(self) -> None:
        from gate import conf

        conf.check()  # refuse to start on a policy or path list no connection could use
