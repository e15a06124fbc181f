"""The product's settings, as the benchmark runs them: ``DJANGO_SETTINGS_MODULE=bench.settings``."""

import os
import secrets

from mqantsite.settings import *  # noqa: F403

# A loopback benchmark server: a key of its own per process, as production requires one.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)

# The fan-out scenario logs in up to a thousand users, and PBKDF2 (about 0.2 s a hash, by
# design) would make its set-up take minutes. Nothing the benchmark measures hashes a password.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The fan-out speaker says up to about 100 messages a second: the Chat quotas on what one
# user stores would refuse it.
MQANT["MODULE_SETTINGS"] = {  # noqa: F405
    **MQANT.get("MODULE_SETTINGS", {}),  # noqa: F405
    "Chat": {"UserMessageLimit": 0, "UserBytesPerDay": 0},
}

# Every load-tool client logs in from 127.0.0.1, up to a thousand at once: the address's
# lockout count (mqant/accounts/lockout.py) would refuse all but the first 20 in flight.
LOGIN_LOCKOUT = {**LOGIN_LOCKOUT, "IP_FAILURES": 0}  # noqa: F405
