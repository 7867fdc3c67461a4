"""plugins/action: pyfleet_packages and pyfleet_prune in-process, with the host's commands stood in for.

ActionBase.run (argument check, check mode) is Ansible's own; the commands a host
would run are recorded and answered here.
"""

import shlex
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleActionFail
from ansible.plugins import action as action_base
from plugin_module import load
from test_orphans import NOTHING_KEPT, WEB2

from pyfleet import orphans

packages = load("plugins/action/pyfleet_packages.py")
prune = load("plugins/action/pyfleet_prune.py")


@pytest.fixture(autouse=True)
def no_warnings(monkeypatch):
    """Ansible's warnings while a test runs (ActionBase warns when handed a tmp directory)."""
    said = []
    monkeypatch.setattr(action_base.display, "warning", lambda msg, *a, **k: said.append(msg))
    yield said
    assert said == []


def make(module, args, answers=(), check_mode=False, action="pyfleet_x"):
    """An ActionModule of ``module`` for a task with ``args``; the host answers ``answers`` in turn."""
    task = SimpleNamespace(args=args, async_val=0, check_mode=check_mode, action=action)
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    plugin = module.ActionModule(task, connection, SimpleNamespace(check_mode=check_mode), None, None)
    plugin.commands, plugin.modules, replies = [], [], list(answers)

    def execute(command, sudoable=True):  # ActionBase._low_level_execute_command's default
        plugin.commands.append((command, sudoable))
        return replies.pop(0)

    def execute_module(module_name, module_args, task_vars):
        plugin.modules.append((module_name, module_args, task_vars))
        return {"changed": True, "msg": "installed"}

    plugin._low_level_execute_command = execute
    plugin._execute_module = execute_module
    return plugin


# --- pyfleet_packages ---------------------------------------------------------------------

INSTALLED = "ii nginx\nii libc6:amd64\n"


def test_a_converged_host_costs_one_read_only_query_and_no_apt():
    plugin = make(packages, {"name": ["nginx", "libc6"]}, [{"rc": 0, "stdout": INSTALLED}])
    assert plugin.run(task_vars={}) == {"changed": False, "missing": []}
    [(command, sudoable)] = plugin.commands
    assert shlex.split(command) == ["dpkg-query", "-W", "-f=${db:Status-Abbrev}${binary:Package}\\n", "nginx", "libc6"]
    assert sudoable is False
    assert plugin.modules == []


def test_one_name_is_a_list_of_one():
    plugin = make(packages, {"name": "nginx"}, [{"rc": 0, "stdout": INSTALLED}])
    assert plugin.run(task_vars={}) == {"changed": False, "missing": []}
    assert shlex.split(plugin.commands[0][0])[-1] == "nginx"


def test_a_missing_package_runs_apt_for_all_with_the_apt_options_given():
    args = {"name": ["nginx", "redis-server"], "cache_valid_time": 86400, "update_cache": True}
    plugin = make(packages, args, [{"rc": 1, "stdout": "ii nginx\n"}])
    task_vars = {"inventory_hostname": "web1"}
    result = plugin.run(task_vars=task_vars)
    assert result == {"changed": True, "msg": "installed", "missing": ["redis-server"]}
    assert plugin.modules == [
        (
            "ansible.builtin.apt",
            {"name": ["nginx", "redis-server"], "state": "present", "cache_valid_time": 86400, "update_cache": True},
            task_vars,
        )
    ]


def test_a_query_without_output_counts_everything_missing():
    plugin = make(packages, {"name": ["nginx"], "install_recommends": False}, [{"rc": 1}])
    assert plugin.run(task_vars={})["missing"] == ["nginx"]
    assert plugin.modules[0][1] == {"name": ["nginx"], "state": "present", "install_recommends": False}


@pytest.mark.parametrize("name", [None, [], "", ["nginx", ""], ["nginx", 3]])
def test_no_package_name_is_refused_before_the_host_is_asked(name):
    plugin = make(packages, {"name": name})
    with pytest.raises(
        AnsibleActionFail, match=r"^pyfleet_packages: name must be a package name or a list of them, not "
    ):
        plugin.run(task_vars={})
    assert plugin.commands == []


def test_an_option_apt_would_not_get_is_refused():
    plugin = make(packages, {"name": "nginx", "state": "latest"}, action="pyfleet_packages")
    with pytest.raises(AnsibleActionFail, match="Invalid options for pyfleet_packages: state"):
        plugin.run(task_vars={})


def test_a_package_half_installed_or_removed_is_missing():
    assert packages.missing_packages(["a", "b", "c"], "ii a\nrc b\niU c\n") == ["b", "c"]
    assert packages.missing_packages(["a", "b"], "ii a:amd64\nii c\n") == ["b"]


# --- pyfleet_prune --------------------------------------------------------------------------

KEEP_NOTHING = dict(NOTHING_KEPT)


def test_a_host_with_left_overs_has_them_removed_as_root_and_said():
    plugin = make(prune, {"wanted": KEEP_NOTHING}, [{"rc": 0, "stdout": WEB2}, {"rc": 0, "stdout": ""}])
    result = plugin.run(task_vars={})
    gone = orphans.orphans(orphans.parse_probe(WEB2), KEEP_NOTHING)
    assert result == {"changed": True, "removed": orphans.describe(gone, False)}
    assert plugin.commands == [
        ("sh -c " + shlex.quote(orphans.PROBE), True),
        ("sh -c " + shlex.quote(orphans.removal_script(gone, False)), True),
    ]


def test_purge_removes_the_apps_data_too():
    plugin = make(prune, {"wanted": KEEP_NOTHING, "purge": True}, [{"rc": 0, "stdout": WEB2}, {"rc": 0}])
    gone = orphans.orphans(orphans.parse_probe(WEB2), KEEP_NOTHING)
    assert plugin.run(task_vars={})["removed"] == orphans.describe(gone, True)
    assert plugin.commands[1][0] == "sh -c " + shlex.quote(orphans.removal_script(gone, True))


def test_check_mode_says_what_would_go_and_removes_nothing():
    plugin = make(prune, {"wanted": KEEP_NOTHING}, [{"rc": 0, "stdout": WEB2}], check_mode=True)
    result = plugin.run(task_vars={})
    assert result["changed"] is True and result["removed"]
    assert len(plugin.commands) == 1


def test_a_converged_host_is_probed_once_and_left_alone():
    plugin = make(prune, {"wanted": KEEP_NOTHING}, [{"rc": 0, "stdout": ""}])
    assert plugin.run(task_vars={}) == {"changed": False, "removed": []}
    assert len(plugin.commands) == 1


def test_left_over_app_data_alone_goes_only_with_purge():
    probe = 'retired|old|{"base_dir": "/srv/old", "user": "app_old"}\n'
    plugin = make(prune, {"wanted": KEEP_NOTHING}, [{"rc": 0, "stdout": probe}])
    assert plugin.run(task_vars={}) == {"changed": False, "removed": []}
    plugin = make(prune, {"wanted": KEEP_NOTHING, "purge": "yes"}, [{"rc": 0, "stdout": probe}, {"rc": 0}])
    assert plugin.run(task_vars={}) == {"changed": True, "removed": ["app old data (/srv/old, user app_old)"]}


@pytest.mark.parametrize(
    "wanted", [None, "web1", {"units": [], "nginx_files": [], "nginx": False, "services": []}, {k: [] for k in "abcde"}]
)
def test_anything_but_the_plans_wanted_mapping_is_refused(wanted):
    plugin = make(prune, {"wanted": wanted})
    with pytest.raises(AnsibleActionFail) as err:
        plugin.run(task_vars={})
    assert str(err.value).startswith(
        "pyfleet_prune: wanted must be pyfleet_plan.hosts[host].wanted (pyfleet.orphans.wanted)"
    )
    assert plugin.commands == []


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        ({"rc": 1, "stderr": "  sh: 1: cannot open\n", "stdout": "out"}, "pyfleet_prune: sh: 1: cannot open"),
        ({"rc": 2, "stdout": "only stdout\n"}, "pyfleet_prune: only stdout"),
        ({"rc": 1}, "pyfleet_prune:"),
        ({"stdout": "x" * 400}, "pyfleet_prune: " + "x" * 300),
    ],
)
def test_a_failed_command_is_its_last_words(reply, said):
    plugin = make(prune, {"wanted": KEEP_NOTHING}, [reply])
    with pytest.raises(AnsibleActionFail) as err:
        plugin.run(task_vars={})
    assert str(err.value) == said


def test_a_failed_removal_is_its_last_words():
    plugin = make(prune, {"wanted": KEEP_NOTHING}, [{"rc": 0, "stdout": WEB2}, {"rc": 1, "stderr": "nginx: [emerg] x"}])
    with pytest.raises(AnsibleActionFail, match=r"^pyfleet_prune: nginx: \[emerg\] x$"):
        plugin.run(task_vars={})


def test_a_host_that_answers_nothing_has_nothing_to_remove():
    plugin = make(prune, {"wanted": KEEP_NOTHING}, [{"rc": 0}])
    assert plugin.run(task_vars={}) == {"changed": False, "removed": []}
