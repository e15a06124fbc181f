"""The product's settings, as the benchmark runs them: ``DJANGO_SETTINGS_MODULE=bench.settings``."""

from mqantsite.settings import *  # noqa: F403

# The fan-out scenario logs in up to a thousand users, and PBKDF2 (about 0.2 s a hash, by
# design) would make its set-up take minutes. Nothing the benchmark measures hashes a password.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
