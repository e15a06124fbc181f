"""The site's settings plus the test probes' app (tests/mqant/probes.py)."""

from mqantsite.settings import *  # noqa: F403
from mqantsite.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.mqant.probes.ProbesConfig"]
