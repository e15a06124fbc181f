from django.apps import AppConfig


class XaXbConfig(AppConfig):
    name = "xaxb"
    verbose_name = "XaXb module"
