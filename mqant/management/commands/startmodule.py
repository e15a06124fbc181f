"""``manage.py startmodule NAME [DIRECTORY]``: a new app with a working module, as ``startapp``
writes an app."""

import os
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.templates import TemplateCommand

from mqant import conf, config
from mqant.registry import module_classes

TEMPLATE = Path(__file__).resolve().parent.parent / "module_template"


def module_type_of(name: str) -> str:
    """The module type of app ``name``, as ``startapp`` names its AppConfig: ``my_game`` ->
    ``MyGame``."""
    return "".join(x for x in name.title() if x != "_")


class Command(TemplateCommand):
    help = (
        "Creates an app with a module of mqant (modules.py, one @handler with a typed "
        "message, and its test) in the current directory or the given one."
    )
    missing_args_message = "You must provide a module app name."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="Name of the app, a Python identifier.")
        parser.add_argument("directory", nargs="?", help="Optional destination directory.")

    # As startapp's: the command line's arguments arrive as options, and the template
    # command's own handle() takes them positionally.
    def handle(self, **options: Any) -> None:  # type: ignore[override]
        name, target = options.pop("name"), options.pop("directory")
        self.app_or_project, self.a_or_an = "app", "an"  # what validate_name speaks of
        self.validate_name(name)
        module_type = module_type_of(name)
        self._refuse_clash(name, module_type)
        options.update(template=str(TEMPLATE), extensions=["py"], files=[], module_type=module_type)
        super().handle("app", name, target, **options)
        self._advise(name, module_type, Path(target or name))

    def _refuse_clash(self, name: str, module_type: str) -> None:
        if name in settings.INSTALLED_APPS or apps.is_installed(name):
            raise CommandError(f"'{name}' is an installed app already.")
        if any(config.label == name for config in apps.get_app_configs()):
            raise CommandError(f"'{name}' is the label of an installed app already.")
        known = module_classes().get(module_type)
        if known is not None:
            raise CommandError(
                f"Module type '{module_type}' exists already ({known.__module__}); "
                "pick another name."
            )

    def _advise(self, name: str, module_type: str, written: Path) -> None:
        """What the project needs to run the new module: the app, and where the deployment
        lists module types, the type."""
        write = self.stdout.write
        write(f'Add to INSTALLED_APPS:    "{name}",')
        entry = f'"{module_type}": [{{"Id": "{module_type}001", "ProcessID": "development"}}]'
        if os.environ.get(config.CONFIG_ENV) or conf.get("CONFIG") is not None:
            write(f'Add to the "Module" section of your deployment file: {entry}')
        elif conf.get("MODULES") is not None:
            write(f'Add "{module_type}" to MQANT["MODULES"].')
        else:
            write(
                "The built-in deployment runs every module in the default process; "
                f'a deployment file (MQANT_CONFIG) lists it in "Module": {entry}'
            )
        write(f"Its test: python -m pytest {written / 'tests'}")
