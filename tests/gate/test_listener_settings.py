"""The gate's own listeners' addresses and TLS files: the process's Gate entry in mqant's
server.conf format, else the MQANT settings."""

from gate.listeners import ListenerSettings, listener_settings, parse_addr


def gate_entry(settings_: dict[str, object]) -> dict[str, object]:
    gate = {"Id": "Gate001", "ProcessID": "development", "Settings": settings_}
    return {"Module": {"Gate": [gate], "HelloWorld": [{"Id": "H1", "ProcessID": "development"}]}}


def test_gate_entry_names_the_listeners(settings):
    entry = {
        "TCPAddr": ":4563",
        "WSAddr": ":4653",
        "Tls": True,
        "CertFile": "c.pem",
        "KeyFile": "k.pem",
        "HTTPTimeout": 5,
    }
    settings.MQANT = {**settings.MQANT, "CONFIG": gate_entry(entry)}
    assert listener_settings() == ListenerSettings(":4563", ":4653", "c.pem", "k.pem", 5.0)
    assert parse_addr(":4563") == ("0.0.0.0", 4563)
    assert parse_addr("[::1]:4653") == ("::1", 4653)


def test_settings_without_a_gate_entry(settings):
    settings.MQANT = {
        **settings.MQANT,
        "CONFIG": gate_entry({}),
        "TCP_ADDR": "127.0.0.1:1234",
        "WS_ADDR": "",
        "TLS_CERT": "",
        "TLS_KEY": "",
        "HTTP_REQUEST_TIMEOUT": 7,
    }
    assert listener_settings() == ListenerSettings("127.0.0.1:1234", "", "", "", 7.0)


def test_the_defaults_are_mqants_ports_on_loopback(settings):
    settings.MQANT = {"CONFIG": gate_entry({})}
    listeners = listener_settings()
    assert (listeners.tcp_addr, listeners.ws_addr) == ("127.0.0.1:3563", "127.0.0.1:3653")
