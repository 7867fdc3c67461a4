"""The pyfleet_service action: one `systemctl show` decides, systemd_service runs only when something is to be done."""

import pytest
from plugin_module import load

action = load("plugins/action/pyfleet_service.py")

# Real `systemctl show --property=LoadState,ActiveState,UnitFileState` output from a lab host.
RUNNING = "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n"
STOPPED_DISABLED = "LoadState=loaded\nActiveState=inactive\nUnitFileState=disabled\n"
MISSING = "LoadState=not-found\nActiveState=inactive\nUnitFileState=\n"


def test_show_output_is_read_as_properties():
    assert action.unit_properties(RUNNING + "\n") == {
        "LoadState": "loaded",
        "ActiveState": "active",
        "UnitFileState": "enabled",
    }
    assert action.unit_properties(MISSING)["UnitFileState"] == ""


@pytest.mark.parametrize(
    ("output", "state", "enabled", "done"),
    [
        (RUNNING, "started", True, True),
        (RUNNING, None, True, True),
        (RUNNING, "started", None, True),
        (STOPPED_DISABLED, "started", True, False),
        (STOPPED_DISABLED, None, True, False),
        (STOPPED_DISABLED.replace("inactive", "active"), "started", None, True),
        (RUNNING.replace("active\n", "activating\n"), "started", None, False),  # systemd_service decides
        (RUNNING.replace("=enabled", "=static"), None, True, False),
        (RUNNING.replace("=enabled", "=enabled-runtime"), None, True, False),
        (MISSING, "started", True, False),  # systemd_service says the unit is missing
        ("", "started", True, False),
    ],
)
def test_a_unit_needs_nothing_only_when_loaded_active_and_enabled_as_asked(output, state, enabled, done):
    assert action.already_there(action.unit_properties(output), state, enabled) is done


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        ({"name": "nginx", "state": "started", "enabled": True}, ("nginx", "started", True)),
        ({"name": "nginx", "enabled": "yes", "daemon_reload": "False"}, ("nginx", None, True)),
        ({"name": "nginx", "state": "started"}, ("nginx", "started", None)),
        ({"name": "nginx", "state": "started", "daemon_reload": True}, None),  # systemd must reload first
        ({"name": "nginx", "state": "restarted"}, None),
        ({"name": "nginx", "state": "stopped", "enabled": False}, None),
        ({"name": "nginx", "enabled": False}, None),
        ({"name": "nginx", "state": "started", "masked": False}, None),
        ({"name": "nginx", "state": "started", "scope": "user"}, None),
        ({"name": "nginx", "daemon_reload": False}, None),  # nothing the check covers
    ],
)
def test_only_started_and_enabled_are_checked_first(args, wanted):
    assert action.checkable(args) == wanted
