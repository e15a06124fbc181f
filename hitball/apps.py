from django.apps import AppConfig


class HitballConfig(AppConfig):
    name = "hitball"
    verbose_name = "Hitball module"
