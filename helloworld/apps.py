from django.apps import AppConfig


class HelloWorldConfig(AppConfig):
    name = "helloworld"
    verbose_name = "HelloWorld module"
