"""The TCP listener's address and TLS files: the process's Gate entry in mqant's
server.conf format, else the MQANT settings."""

from gate.tcp import listener_settings, parse_addr


def gate_entry(settings_: dict[str, object]) -> dict[str, object]:
    gate = {"Id": "Gate001", "ProcessID": "development", "Settings": settings_}
    return {"Module": {"Gate": [gate], "HelloWorld": [{"Id": "H1", "ProcessID": "development"}]}}


def test_gate_entry_names_the_listener(settings):
    entry = {"TCPAddr": ":4563", "Tls": True, "CertFile": "c.pem", "KeyFile": "k.pem"}
    settings.MQANT = {**settings.MQANT, "CONFIG": gate_entry(entry)}
    assert listener_settings() == (":4563", "c.pem", "k.pem")
    assert parse_addr(":4563") == ("0.0.0.0", 4563)


def test_settings_without_a_gate_entry(settings):
    settings.MQANT = {
        **settings.MQANT,
        "CONFIG": gate_entry({}),
        "TCP_ADDR": "127.0.0.1:1234",
        "TLS_CERT": "",
        "TLS_KEY": "",
    }
    assert listener_settings() == ("127.0.0.1:1234", "", "")
