"""The table tests' fixture of sessions on connections of this process (tests/mqant)."""

from tests.mqant.test_tables import sessions  # noqa: F401
