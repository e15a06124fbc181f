from collections.abc import Iterator

import pytest

from tests.e2e.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One daphne process serving the default site, shared by a test module."""
    proc = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()
