"""MQTT over TLS on the TCP listener, and the per-process connection limit over TCP."""

import contextlib
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from tests.e2e.raw import RawClient
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    workdir = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(workdir)
    settings = {"TLS_CERT": str(cert), "TLS_KEY": str(key), "MAX_CONNECTIONS": 3}
    proc = ServerProcess(workdir, mqant=settings).start()
    yield proc, cert
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


def test_mqtt_over_tls(tls_server):
    server, cert = tls_server
    replies: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.tls_set(ca_certs=str(cert), cert_reqs=ssl.CERT_REQUIRED)
    client.on_message = lambda _c, _u, m: replies.append(bytes(m.payload))
    client.connect("127.0.0.1", server.tcp_port)
    client.loop_start()
    try:
        client.publish("HelloWorld/HD_Say/1", b'{"say": "encrypted"}', qos=1)
        for _ in range(100):
            if replies:
                break
            time.sleep(0.05)
        assert b"you say : encrypted" in replies[0]
    finally:
        client.disconnect()
        client.loop_stop()


def test_plain_tcp_is_refused_by_the_tls_listener(tls_server):
    server, _ = tls_server
    raw = RawClient(server.tcp_port, connect=False)
    raw.send(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")  # a CONNECT, in the clear
    assert raw.closed_within(5)
    raw.close()


def test_connection_limit_over_tcp(tls_server):
    server, cert = tls_server
    context = ssl.create_default_context(cafile=str(cert))
    address = ("127.0.0.1", server.tcp_port)
    held = [
        context.wrap_socket(socket.create_connection(address), server_hostname="127.0.0.1")
        for _ in range(3)
    ]
    try:
        # The slot is taken before the TLS handshake: past the limit, the socket is refused
        # during its handshake (reset), or closed at once after it.
        plain = socket.create_connection(address)
        plain.settimeout(5)
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            extra = context.wrap_socket(plain, server_hostname="127.0.0.1")
            assert extra.recv(1) == b""
        plain.close()
        assert "MAX_CONNECTIONS reached" in server.output()
    finally:
        for sock in held:
            sock.close()
