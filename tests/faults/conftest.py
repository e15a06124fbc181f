"""One deployment for the fault suite's module: its own Redis, PostgreSQL behind a proxy, two
gates and a module process."""

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import POSTGRES_URL, require_service
from tests.faults import figures
from tests.faults.deployment import Database, Deployment
from tests.faults.services import RedisServer, TcpProxy


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    """A fresh database on the local PostgreSQL for the module, dropped after it."""
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        require_service("PostgreSQL", f"{POSTGRES_URL}: {err}")
    name = f"mqant_faults_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    yield Database(POSTGRES_URL, name)
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, database: Database
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("faults")
    redis = RedisServer(workdir)
    try:
        redis.start()
    except RuntimeError as err:
        require_service("Redis", str(err))
    proxy = TcpProxy("127.0.0.1", int(POSTGRES_URL.rsplit(":", 1)[1].split("/")[0])).start()
    running = Deployment(workdir, redis, proxy, database)
    try:
        running.start_gate(0)
        running.start_gate(1)
        running.modules.start()
        running.ready()
        yield running
    finally:
        running.stop()
        proxy.stop()
        redis.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each fault's recovery time, longest unanswered request, errors and log lines."""
    for line in figures.summary():
        terminalreporter.write_line(line)
