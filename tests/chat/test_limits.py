"""The Chat module's settings: defaults, numbers from JSON or strings, values out of range."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from chat.limits import SETTING_NAMES, ChatLimits, deployment_limits


def test_defaults_and_overrides():
    limits = ChatLimits.from_settings({})
    assert limits == ChatLimits()
    assert (limits.history_size, limits.history_bytes, limits.max_message) == (50, 65536, 4000)
    changed = ChatLimits.from_settings({"HistoryBytes": "1024", "SweepInterval": 0.5})
    assert (changed.history_bytes, changed.sweep_interval) == (1024, 0.5)
    assert len(SETTING_NAMES) == len(ChatLimits.__dataclass_fields__)


@pytest.mark.parametrize(
    ("chat_settings", "error"),
    [
        ({"HistoryBytes": 0}, "Chat's HistoryBytes must be above 0, got 0"),
        ({"RoomMaxMessages": -1}, "Chat's RoomMaxMessages must be 0 or more, got -1"),
        ({"MaxRoomNameLength": 500}, "Chat's MaxRoomNameLength must be at most 200"),
        ({"UserBytesPerDay": "lots"}, "Chat's UserBytesPerDay must be a number, got 'lots'"),
        ({"JoinUsers": True}, "Chat's JoinUsers must be a number, got True"),
    ],
)
def test_values_out_of_range_are_refused_at_start(chat_settings, error):
    with pytest.raises(ImproperlyConfigured, match=f"^{error}"):
        ChatLimits.from_settings(chat_settings)


def test_a_command_reads_the_deployments_chat_settings(settings):
    settings.MQANT = {
        **settings.MQANT,
        "CONFIG": None,
        "MODULE_SETTINGS": {"Chat": {"SweepBatch": 7}},
    }
    assert deployment_limits().sweep_batch == 7
    settings.MQANT = {
        **settings.MQANT,
        "CONFIG": {
            "Module": {
                "Chat": [{"Id": "C1", "ProcessID": "elsewhere", "Settings": {"SweepBatch": 9}}]
            }
        },
    }
    assert deployment_limits().sweep_batch == 9  # not this process's: the first entry
