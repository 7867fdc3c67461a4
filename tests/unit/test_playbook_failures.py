"""ansible-playbook for real (the project's ansible.cfg, its callbacks), on this machine: the line a failed run ends with.

Each test writes an inventory and a playbook under its tmp dir and runs them
through ``pyfleet.ansible.playbook`` on ``localhost`` with a local connection
(without Mitogen), so no host, container or network is involved. A fake
``nginx`` prints what nginx printed on a trixie web host with a duplicated
directive and exits 1.
"""

import json
import socket
import sys
import textwrap

import pytest
import yaml

from pyfleet import ansible
from pyfleet.errors import PyfleetError

EMERG = 'nginx: [emerg] "server_tokens" directive is duplicate in /etc/x.conf:5'
FAKE_NGINX = f"""#!/bin/sh
echo 'nginx: [warn] conflicting server name "a" on 0.0.0.0:80, ignored' >&2
echo '{EMERG}' >&2
echo 'nginx: configuration file /etc/x.conf test failed' >&2
exit 1
"""


@pytest.fixture
def run(tmp_path):
    """run(tasks, handlers, host_vars, group_vars, text, path, extra_env) -> the PyfleetError's line.

    Everything Ansible writes (temp files, fact cache) stays under tmp_path.
    """
    nginx = tmp_path / "nginx"
    nginx.write_text(FAKE_NGINX)
    nginx.chmod(0o755)
    (tmp_path / "site.conf.j2").write_text("server_tokens off;\nserver_tokens off;\n")

    def run_playbook(tasks=(), handlers=(), host_vars=None, group_vars=None, text=None, path=None, extra_env=None):
        host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **(host_vars or {})}
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"web1": host}, "vars": group_vars or {}}}))
        play = {
            "name": "Web",
            "hosts": "all",
            "gather_facts": False,
            "vars": {"nginx": str(nginx), "dir": str(tmp_path)},
        }
        play.update(tasks=list(tasks), handlers=list(handlers))
        playbook = tmp_path / "play.yml"
        playbook.write_text(text if text is not None else yaml.safe_dump([play], sort_keys=False))
        env = {
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
            "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
        }
        if path:
            env["PATH"] = f"{path}:{ansible.ansible_env()['PATH']}"
        env.update(extra_env or {})
        with pytest.raises(PyfleetError) as failed:
            ansible.playbook(inventory, playbook, mitogen=False, quiet=True, extra_env=env)
        line = str(failed.value)
        assert "\n" not in line
        return line

    return run_playbook


FIX = "; fix it and run again"


def test_a_command_that_fails_names_host_task_and_its_stderr(run):
    line = run([{"name": "Check the nginx configuration", "ansible.builtin.command": "{{ nginx }} -t"}])
    assert line == f"web1: task 'Check the nginx configuration' failed: {EMERG}{FIX}"


# A task that notifies a handler whose nginx -t fails.
CHANGE_THEN_FAILING_RELOAD = {
    "tasks": [
        {"name": "Change the site", "ansible.builtin.command": "true", "changed_when": True, "notify": "Reload nginx"}
    ],
    "handlers": [{"name": "Reload nginx", "ansible.builtin.command": "{{ nginx }} -t"}],
}


def test_a_failed_handler_names_the_handler(run):
    line = run(
        **CHANGE_THEN_FAILING_RELOAD,
    )
    assert line == f"web1: task 'Reload nginx' failed: {EMERG}{FIX}"


def test_a_template_that_fails_validation_names_the_validators_line(run):
    task = {
        "name": "Write the nginx site",
        "ansible.builtin.template": {
            "src": "{{ dir }}/site.conf.j2",
            "dest": "{{ dir }}/pyfleet.conf",
            "validate": "{{ nginx }} -t -c %s",
        },
    }
    assert run([task]) == f"web1: task 'Write the nginx site' failed: {EMERG}{FIX}"


def test_a_loop_names_its_first_failed_item(run):
    task = {
        "name": "Check the configurations",
        "ansible.builtin.command": "{{ item }}",
        "loop": ["true", "{{ nginx }}", "false"],
        "loop_control": {"label": "{{ item | basename }}"},
    }
    assert run([task]) == f"web1: task 'Check the configurations' failed: item nginx: {EMERG}{FIX}"


def test_assert_and_shell_stdout(run):
    assert run([{"name": "Check the port", "ansible.builtin.assert": {"that": ["1 == 2"]}}]) == (
        f"web1: task 'Check the port' failed: assertion failed: 1 == 2{FIX}"
    )
    assert run([{"name": "Probe", "ansible.builtin.shell": "echo 'probe: 502 from /healthz'; exit 3"}]) == (
        f"web1: task 'Probe' failed: probe: 502 from /healthz{FIX}"
    )


def test_a_rescued_failure_is_not_the_cause(run):
    tasks = [
        {
            "name": "Try",
            "block": [{"name": "Fails first", "ansible.builtin.command": "false"}],
            "rescue": [{"name": "Recover", "ansible.builtin.debug": {"msg": "recovered"}}],
        },
        {"name": "Check the nginx configuration", "ansible.builtin.command": "{{ nginx }} -t"},
    ]
    assert run(tasks) == f"web1: task 'Check the nginx configuration' failed: {EMERG}{FIX}"


def test_a_no_log_task_fails_without_showing_its_output(run):
    task = {
        "name": "Set the password",
        "ansible.builtin.shell": "echo 'password=hunter2-SECRET' >&2; exit 1",
        "no_log": True,
    }
    line = run([task])
    assert line == f"web1: task 'Set the password' failed: its output is hidden (no_log: true){FIX}"


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host(run):
    port = _closed_port()
    ssh = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": port}
    line = run([{"name": "Ping", "ansible.builtin.ping": {}}], host_vars=ssh)
    assert line == (
        f"web1: unreachable: ssh: connect to host 127.0.0.1 port {port}: Connection refused; "
        "check that the host is up and that SSH reaches it, then run again"
    )


def test_a_changed_host_key_says_how_to_fix_it(run, tmp_path):
    """A fake ssh prints what OpenSSH prints for a changed key; the port comes from group vars."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(
        textwrap.dedent("""\
            #!/bin/sh
            cat >&2 <<'EOF'
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
            Host key for [10.89.0.5]:2222 has changed and you have requested strict checking.
            Host key verification failed.
            EOF
            exit 255
            """)
    )
    ssh.chmod(0o755)
    line = run(
        [{"name": "Ping", "ansible.builtin.ping": {}}],
        host_vars={"ansible_connection": "ssh", "ansible_host": "10.89.0.5"},
        group_vars={"ansible_port": 2222},
        path=bin_dir,
    )
    assert line == (
        "web1: its SSH host key is unknown or has changed (WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!); "
        "check the server's key, then add it with ssh-keyscan -p 2222 10.89.0.5 >> ~/.ssh/known_hosts "
        "(or remove the old one with ssh-keygen -R '[10.89.0.5]:2222')"
    )


def test_a_playbook_ansible_cannot_read_gives_its_first_error_line(run):
    line = run(text="- hosts: all\n  tasks: [\n")
    assert line.startswith("playbook play failed: [ERROR]: ")
    assert line.endswith(FIX)


def test_the_failures_file_holds_each_failure(tmp_path, run):
    """What the callback records for playbook(): host, task, play, msg, stderr line, rc."""
    seen = {}
    real_read = ansible._read_failures

    def keep(path):
        seen.update(real_read(path))
        return seen

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ansible, "_read_failures", keep)
        run([{"name": "Check the nginx configuration", "ansible.builtin.command": "{{ nginx }} -t"}])
    (rec,) = seen["failures"]
    assert seen["failed_hosts"] == ["web1"]
    assert {k: rec[k] for k in ("host", "task", "play", "msg", "stderr", "rc")} == {
        "host": "web1",
        "task": "Check the nginx configuration",
        "play": "Web",
        "msg": "non-zero return code",
        "stderr": EMERG,
        "rc": 1,
    }
    assert rec["path"].startswith(f"{tmp_path / 'play.yml'}:")
    json.dumps(seen)


def test_deploy_progress_shows_the_same_cause(run, tmp_path, capsys):
    """fab deploy's stdout callback (pyfleet_progress) prints and summarises the failure as the error says it."""
    summary = tmp_path / "summary.json"
    env = {"ANSIBLE_STDOUT_CALLBACK": "pyfleet_progress", "PYFLEET_SUMMARY": str(summary)}
    line = run(
        **CHANGE_THEN_FAILING_RELOAD,
        extra_env=env,
    )
    assert line == f"web1: task 'Reload nginx' failed: {EMERG}{FIX}"
    (rec,) = json.loads(summary.read_text())["failures"]
    assert rec["line"] == f"web1: task 'Reload nginx' failed: {EMERG}"
