from django.apps import AppConfig


class LoginConfig(AppConfig):
    name = "login"
    verbose_name = "Login module"
