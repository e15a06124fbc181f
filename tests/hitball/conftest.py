# The table tests' fixture: sessions whose connections are owners in this process.
from tests.mqant.test_tables import sessions  # noqa: F401
