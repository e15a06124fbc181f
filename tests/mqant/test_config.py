"""The deployment loader: mqant's server.conf read from real files, its rules, where it comes
from, and which modules a process runs."""

import json
import textwrap

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from mqant import config

# mqant's documented format: JSON with // comment lines (indented by spaces or tabs), entries
# carrying keys this project ignores (Host, Group, Rabbitmq), sections it ignores (Mqtt, Rpc,
# Master), and the Gate's listeners in its entry's Settings.
SERVER_CONF = textwrap.dedent(
    """\
    {
        // Settings every module can read
        "Settings": {"Title": "demo", "Limits": {"Rooms": 10}},
    \t"Module": {
            "Gate": [
                {
                    // the Id must be unique in the whole file
                    "Id": "Gate001",
                    "ProcessID": "gate1",
                    "Settings": {
                        "WSAddr": ":3653",
                        "TCPAddr": ":3563",
                        "TLS": false,
                        "CertFile": "",
                        "KeyFile": ""
                    }
                },
                {"Id": "Gate002", "ProcessID": "gate2", "Settings": {"TCPAddr": ":3564"}}
            ],
            "Login": [
                {"Id": "Login001", "Host": "127.0.0.1", "ProcessID": "modules1",
                 "Rabbitmq": {"Uri": "amqp://unused"}}
            ],
    \t\t// only the process started with --pid modules1 runs these
            "Chat": [
                {"Id": "Chat001", "ProcessID": "modules1", "Settings": {"HistorySize": 5}},
                {"Id": "Chat002", "ProcessID": "modules2"}
            ],
            "Webapp": [{"Id": "Webapp001", "ProcessID": "modules1"}]
        },
        "Mqtt": {"WirteLoopChanNum": 10, "ReadPackLoop": 1},
        "Rpc": {"RpcExpired": 5, "LogSuccess": false},
        "Master": {"Enable": false, "SSH": [], "Process": []}
    }
    """
)


@pytest.fixture
def conf_file(tmp_path):
    def write(text: str, name: str = "server.json"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def pid(monkeypatch):
    """Set MQANT_PROCESS_ID for the test (and clear any --pid override)."""
    config.set_process_id(None)
    monkeypatch.delenv(config.PROCESS_ID_ENV, raising=False)
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)

    def use(process_id: str) -> None:
        monkeypatch.setenv(config.PROCESS_ID_ENV, process_id)

    yield use
    config.set_process_id(None)


def test_reads_mqants_documented_format(conf_file):
    deployment = config.read(conf_file(SERVER_CONF))
    assert list(deployment.modules) == ["Gate", "Login", "Chat", "Webapp"]
    assert deployment.settings == {"Title": "demo", "Limits": {"Rooms": 10}}
    assert deployment.raw["Rpc"] == {"RpcExpired": 5, "LogSuccess": False}
    assert [(e.module_type, e.id) for e in deployment.for_process("modules1")] == [
        ("Login", "Login001"),
        ("Chat", "Chat001"),
        ("Webapp", "Webapp001"),
    ]
    chat = deployment.entry("Chat", "modules1")
    assert chat is not None
    assert chat.settings == {"HistorySize": 5}
    login = deployment.entry("Login", "modules1")
    assert login is not None
    assert login.settings == {}
    assert deployment.entry("Chat", "gate1") is None
    assert deployment.process_ids() == ["gate1", "gate2", "modules1", "modules2"]


def test_gate_settings_are_this_process_gate_entry(conf_file, pid, monkeypatch):
    monkeypatch.setenv(config.CONFIG_ENV, str(conf_file(SERVER_CONF)))
    pid("gate1")
    assert config.gate_settings() == {
        "WSAddr": ":3653",
        "TCPAddr": ":3563",
        "TLS": False,
        "CertFile": "",
        "KeyFile": "",
    }
    pid("gate2")
    assert config.gate_settings() == {"TCPAddr": ":3564"}
    pid("modules1")
    assert config.gate_settings() is None


def test_an_id_used_twice_is_refused(conf_file):
    text = json.dumps(
        {
            "Module": {
                "Login": [{"Id": "Same", "ProcessID": "a"}],
                "Chat": [{"Id": "Other", "ProcessID": "a"}, {"Id": "Same", "ProcessID": "b"}],
            }
        }
    )
    path = conf_file(text)
    with pytest.raises(ImproperlyConfigured) as err:
        config.read(path)
    assert str(err.value) == (
        f"Invalid mqant config {path}: Id 'Same' is used twice, by Module.Login[0] and "
        "Module.Chat[1]; an Id must be unique in the whole file"
    )


def test_one_type_twice_on_one_process_is_refused(conf_file):
    entries = [
        {"Id": "Chat001", "ProcessID": "p1"},
        {"Id": "Chat002", "ProcessID": "p2"},
        {"Id": "Chat003", "ProcessID": "p1"},
    ]
    path = conf_file(json.dumps({"Module": {"Chat": entries}}))
    with pytest.raises(ImproperlyConfigured) as err:
        config.read(path)
    assert str(err.value) == (
        f"Invalid mqant config {path}: Module.Chat[0] and Module.Chat[2] both run on "
        "ProcessID 'p1'; a process runs at most one instance of a module type"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "the top level must be a JSON object"),
        ('{"Module": []}', '"Module" must be an object'),
        ('{"Module": {"Chat": {}}}', '"Module.Chat" must be a list of entries'),
        ('{"Module": {"Chat": ["x"]}}', "Module.Chat[0] must be an object with Id and ProcessID"),
        ('{"Module": {"Chat": [{"ProcessID": "p"}]}}', "Module.Chat[0].Id must be a non-empty"),
        ('{"Module": {"Chat": [{"Id": "c"}]}}', "Module.Chat[0].ProcessID must be a non-empty"),
        (
            '{"Module": {"Chat": [{"Id": "c", "ProcessID": "p", "Settings": [1]}]}}',
            "Module.Chat[0].Settings must be an object, got list",
        ),
        ('{"Module": {"Chat@x": []}}', "module type 'Chat@x' must be a name without"),
        ('{"Settings": 3}', '"Settings" must be an object'),
    ],
)
def test_malformed_entries_are_refused_with_what_is_wrong(conf_file, text, message):
    path = conf_file(text)
    with pytest.raises(ImproperlyConfigured, match=r"^Invalid mqant config") as err:
        config.read(path)
    assert message in str(err.value)


def test_invalid_json_names_the_files_own_line(conf_file):
    path = conf_file('{\n// a comment\n"Module": {\n  "Chat": [,]\n}}\n')
    with pytest.raises(ImproperlyConfigured, match=r"is not valid JSON: .*line 4 column"):
        config.read(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="Cannot read the mqant config"):
        config.read(tmp_path / "absent.json")


def test_sources_env_then_settings_path_then_settings_dict_then_builtin(
    conf_file, settings, monkeypatch, pid
):
    env_file = conf_file('{"Module": {"Chat": [{"Id": "FromEnv", "ProcessID": "p"}]}}', "env.json")
    path_file = conf_file('{"Module": {"Chat": [{"Id": "FromPath", "ProcessID": "p"}]}}', "p.json")
    as_dict = {"Module": {"Chat": [{"Id": "FromDict", "ProcessID": "p"}]}}

    def chat_id() -> str:
        return config.load().modules["Chat"][0].id

    settings.MQANT = {**settings.MQANT, "CONFIG": as_dict}
    assert chat_id() == "FromDict"
    assert config.load().source == 'settings.MQANT["CONFIG"]'
    settings.MQANT = {**settings.MQANT, "CONFIG": str(path_file)}
    assert chat_id() == "FromPath"
    monkeypatch.setenv(config.CONFIG_ENV, str(env_file))
    assert chat_id() == "FromEnv"
    monkeypatch.delenv(config.CONFIG_ENV)
    settings.MQANT = {**settings.MQANT, "CONFIG": 42}
    with pytest.raises(ImproperlyConfigured, match="must be a path or a dict, got int"):
        config.load()


def test_builtin_runs_everything_in_one_development_process(settings, pid):
    settings.MQANT = {
        **settings.MQANT,
        "CONFIG": None,
        "MODULES": ["Login", "Chat"],
        "MODULE_SETTINGS": {"Chat": {"HistorySize": 3}, "Gate": {"TCPAddr": ":4000"}},
    }
    deployment = config.load()
    assert [(e.module_type, e.process_id) for e in deployment.for_process("development")] == [
        ("Gate", "development"),
        ("Login", "development"),
        ("Chat", "development"),
    ]
    chat = deployment.entry("Chat", "development")
    assert chat is not None
    assert chat.settings == {"HistorySize": 3}
    assert config.process_id() == "development"
    assert config.gate_settings() == {"TCPAddr": ":4000"}


def test_process_id_from_pid_override_then_env(pid):
    pid("from-env")
    assert config.process_id() == "from-env"
    config.set_process_id("from-flag")
    assert config.process_id() == "from-flag"


def test_runmodules_refuses_a_process_without_modules(settings, pid):
    settings.MQANT = {
        **settings.MQANT,
        "CONFIG": {"Module": {"Gate": [{"Id": "G", "ProcessID": "gate1"}]}},
    }
    with pytest.raises(CommandError, match=r"gives ProcessID 'gate1' no modules to run"):
        call_command("runmodules", pid="gate1")


def test_runmodules_refuses_an_invalid_deployment(conf_file, monkeypatch, pid):
    entries = [{"Id": "A", "ProcessID": "p"}, {"Id": "B", "ProcessID": "p"}]
    monkeypatch.setenv(config.CONFIG_ENV, str(conf_file(json.dumps({"Module": {"Chat": entries}}))))
    with pytest.raises(ImproperlyConfigured, match="both run on ProcessID 'p'"):
        call_command("runmodules", pid="p")
