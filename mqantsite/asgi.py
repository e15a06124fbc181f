"""ASGI entry point: ``daphne mqantsite.asgi:application`` serves HTTP (admin, REST, static
files) and MQTT over WebSocket at ``/mqtt`` on one process, wired as any project wires the
framework (docs/project.md)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mqantsite.settings")
django_application = get_asgi_application()

from gate.asgi import mqant_application  # noqa: E402 - after django setup

application = mqant_application(django_application)
