from django.apps import AppConfig


class MqantConfig(AppConfig):
    name = "mqant"
    verbose_name = "mqant framework"
