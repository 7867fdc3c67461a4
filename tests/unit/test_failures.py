"""pyfleet.failures: the one line that says why a task failed, from every shape of result Ansible gives."""

import pytest

from pyfleet import failures

EMERG = 'nginx: [emerg] "server_tokens" directive is duplicate in /etc/nginx/conf.d/pyfleet.conf:5'
NGINX_T = f'nginx: [warn] conflicting server name "a" on 0.0.0.0:80, ignored\n{EMERG}\nnginx: configuration file /etc/nginx/nginx.conf test failed\n'
TRACEBACK = (
    "Traceback (most recent call last):\r\n"
    '  File "/root/.ansible/tmp/x/pyfleet_release.py", line 3, in <module>\r\n'
    "    raise RuntimeError('release directory missing')\r\n"
    "RuntimeError: release directory missing\r\n"
)


@pytest.mark.parametrize(
    "result, expected",
    [
        # command/shell: the module's msg says nothing, stderr says why (warnings skipped).
        ({"msg": "non-zero return code", "rc": 1, "stderr": NGINX_T, "stdout": ""}, EMERG),
        # template with validate: "failed to validate", the validator's stderr.
        ({"msg": "failed to validate", "exit_status": 1, "stderr": NGINX_T, "stdout": ""}, EMERG),
        # only stdout: its first line.
        ({"msg": "non-zero return code", "rc": 4, "stderr": "", "stdout": "\n  out only\nmore\n"}, "out only"),
        # no output at all: the msg and the exit code.
        (
            {"msg": "non-zero return code", "rc": 1, "stderr": "", "stdout": ""},
            "non-zero return code (exit code 1, no output)",
        ),
        # a module's own message, Ansible's "Task failed: " prefix dropped, first line only.
        (
            {"msg": "Task failed: Unable to start service nginx: Job failed.\nSee journalctl"},
            "Unable to start service nginx: Job failed.",
        ),
        # both useful: stderr's line.
        (
            {"msg": "apt-get install failed", "stderr": "E: Unable to locate package nginx-x\n"},
            "E: Unable to locate package nginx-x",
        ),
        # a crashed module (Mitogen puts the traceback in module_stdout): the exception line.
        (
            {
                "msg": "MODULE FAILURE\nSee stdout/stderr for the exact error",
                "module_stdout": TRACEBACK,
                "module_stderr": "",
            },
            "RuntimeError: release directory missing",
        ),
        (
            {"msg": "Module result deserialization failed: No start of json char found", "module_stderr": TRACEBACK},
            "RuntimeError: release directory missing",
        ),
        # assert: its fail_msg, or the assertion that failed.
        ({"msg": "one is not two", "assertion": "1 == 2", "evaluated_to": False}, "one is not two"),
        (
            {"msg": "Assertion failed", "assertion": "nginx_port | int > 0", "evaluated_to": False},
            "assertion failed: nginx_port | int > 0",
        ),
        # fail.
        (
            {"msg": "web1: app hello: release refused: health check 502\nmore detail"},
            "web1: app hello: release refused: health check 502",
        ),
        # nothing at all.
        ({}, "failed (no output)"),
    ],
)
def test_cause(result, expected):
    assert failures.cause(dict(result, failed=True)) == expected


def test_cause_of_a_loop_is_its_first_failed_item_named():
    result = {
        "msg": "One or more items failed",
        "results": [
            {"failed": False, "rc": 0, "item": "a.conf", "_ansible_item_label": "a.conf"},
            {
                "failed": True,
                "msg": "failed to validate",
                "stderr": EMERG,
                "item": {"x": 1},
                "_ansible_item_label": "pyfleet.conf",
            },
            {"failed": True, "msg": "non-zero return code", "stderr": "later", "item": "c.conf"},
        ],
    }
    assert failures.cause(result) == f"item pyfleet.conf: {EMERG}"


def test_cause_of_a_loop_without_label_names_the_item():
    result = {"results": [{"failed": True, "msg": "non-zero return code", "rc": 2, "stdout": "no", "item": "x.conf"}]}
    assert failures.cause(result) == "item x.conf: no"


@pytest.mark.parametrize(
    "result",
    [
        {"censored": "the output has been hidden due to the fact that 'no_log: true' was specified", "changed": True},
        {"_ansible_no_log": True, "msg": "password=SECRET", "stderr": "SECRET"},
        {"results": [{"failed": True, "_ansible_no_log": True, "stderr": "SECRET", "item": "SECRET"}]},
    ],
)
def test_a_no_log_result_stays_hidden(result):
    rec = failures.record("web1", "Set the password", result)
    assert rec["cause"] == failures.HIDDEN
    assert "SECRET" not in str(rec)


def test_the_cause_is_one_line_of_at_most_300_characters():
    cause = failures.cause({"msg": "non-zero return code", "stderr": "x  " * 500})
    assert "\n" not in cause and len(cause) <= failures.MAX_CAUSE and cause.endswith("…")


def test_record_says_host_task_and_cause():
    rec = failures.record(
        "web1", "nginx : Reload nginx", {"msg": "non-zero return code", "rc": 1, "stderr": NGINX_T}, play="Web"
    )
    assert rec["line"] == f"web1: task 'nginx : Reload nginx' failed: {EMERG}"
    assert (rec["host"], rec["task"], rec["play"], rec["rc"], rec["msg"], rec["stderr"]) == (
        "web1",
        "nginx : Reload nginx",
        "Web",
        1,
        "non-zero return code",
        EMERG,
    )


def test_record_does_not_repeat_the_host_of_a_roles_failure_line():
    rec = failures.record(
        "web1", "app : Stop the deploy on this host", {"msg": "web1: app hello: hook x failed (exit 2): boom"}
    )
    assert (
        rec["line"] == "web1: task 'app : Stop the deploy on this host' failed: app hello: hook x failed (exit 2): boom"
    )


def test_a_cause_that_says_its_own_fix_gets_no_generic_one():
    why = "lb1: no new ACME certificate for a.test: the ACME directory x is unreachable; fix: check the route to it"
    rec = failures.record("lb1", "loadbalancer : Say which domain failed and why", {"msg": why})
    assert rec["fix"] == ""
    assert failures.message([rec]) == (
        "lb1: task 'loadbalancer : Say which domain failed and why' failed: no new ACME certificate for a.test: "
        "the ACME directory x is unreachable; fix: check the route to it"
    )
    # "fix" inside a word or a path is no fix of the role's own.
    assert failures.record("web1", "t", {"msg": "prefix: bugfix: x"})["fix"] == failures.FIX


CHANGED_KEY = """Task failed: Failed to connect to the host via ssh: @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Add correct host key in /root/.ssh/known_hosts to get rid of this message.
Offending ED25519 key in /root/.ssh/known_hosts:3
Host key for 10.89.0.5 has changed and you have requested strict checking.
Host key verification failed."""


def test_a_changed_host_key_says_so_and_how_to_fix_it():
    rec = failures.unreachable_record("web1", "Gathering Facts", CHANGED_KEY, "10.89.0.5", 22)
    assert rec["unreachable"] and rec["host"] == "web1"
    assert (
        failures.message([rec])
        == "web1: its SSH host key is unknown or has changed (WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!); "
        "check the server's key, then add it with ssh-keyscan 10.89.0.5 >> /root/.ssh/known_hosts "
        "(or remove the old one with ssh-keygen -f /root/.ssh/known_hosts -R 10.89.0.5)"
    )


@pytest.mark.parametrize(
    "msg",
    [
        "Task failed: Failed to connect to the host via ssh: Host key verification failed.",
        "No ED25519 host key is known for 10.89.0.5 and you have requested strict checking.\nHost key verification failed.",
        "Host key checking is enabled, and SSH reported an unrecognized or mismatching host key.",  # Mitogen's
    ],
)
def test_an_unknown_host_key_on_another_port(msg):
    rec = failures.unreachable_record("web1", "ping", msg, "10.89.0.5", 2222)
    assert rec["line"].startswith("web1: its SSH host key is unknown or has changed (")
    assert rec["fix"] == (
        "check the server's key, then add it with ssh-keyscan -p 2222 10.89.0.5 >> ~/.ssh/known_hosts "
        "(or remove the old one with ssh-keygen -R '[10.89.0.5]:2222')"
    )


def test_an_unknown_host_key_without_address_names_the_host():
    rec = failures.unreachable_record("web1", "ping", "Host key verification failed.")
    assert "ssh-keyscan web1 >> ~/.ssh/known_hosts" in rec["fix"]


@pytest.mark.parametrize(
    "msg, line",
    [
        (
            "Task failed: Failed to connect to the host via ssh: ssh: connect to host 10.89.0.5 port 22: Connection refused",
            "web1: unreachable: ssh: connect to host 10.89.0.5 port 22: Connection refused",
        ),
        (  # Ansible's ssh connection, when a module could not be sent
            'Task failed: Data could not be sent to remote host "10.89.0.5". Make sure this host can be reached over ssh: ssh: connect to host 10.89.0.5 port 22: No route to host',
            "web1: unreachable: ssh: connect to host 10.89.0.5 port 22: No route to host",
        ),
        (  # Mitogen's message: its own first line, then ssh's (a warning first)
            "Task failed: EOF on stream; last 100 lines received:\nWarning: Permanently added '10.89.0.5'\nroot@10.89.0.5: Permission denied (publickey).",
            "web1: unreachable: root@10.89.0.5: Permission denied (publickey).",
        ),
    ],
)
def test_other_unreachable_hosts(msg, line):
    rec = failures.unreachable_record("web1", "ping", msg, "10.89.0.5")
    assert rec["line"] == line
    assert rec["fix"] == "check that the host is up and that SSH reaches it, then run again"


def _rec(host, task, stderr):
    return failures.record(host, task, {"msg": "non-zero return code", "rc": 1, "stderr": stderr})


def test_message_is_the_first_host_that_ended_failed_and_names_the_others():
    records = [_rec("web1", "a", "first"), _rec("web2", "b", "second"), _rec("lb1", "c", "third")]
    assert failures.message(records, ["lb1", "web1", "web2"]) == (
        "web1: task 'a' failed: first; fix it and run again; also failed: lb1, web2"
    )


def test_message_leaves_out_what_a_rescue_handled():
    # web1 failed in a block and its rescue recovered; web2 failed for good.
    records = [_rec("web1", "in block", "rescued"), _rec("web2", "b", "for good")]
    assert failures.message(records, ["web2"]) == "web2: task 'b' failed: for good; fix it and run again"


def test_message_is_a_hosts_last_failure():
    # A rescue that stops the host: its own failure is the one that counts.
    records = [_rec("web1", "hook", "early"), _rec("web2", "x", "later"), _rec("web1", "Stop the deploy", "why")]
    assert failures.message(records, ["web1", "web2"]).startswith("web2: task 'x' failed: later;")
    # Without the recap (an interrupted run) every recorded host counts.
    assert failures.message(records[:1]) == "web1: task 'hook' failed: early; fix it and run again"


def test_no_message_without_records():
    assert failures.message([], None) is None
    assert failures.message([_rec("web1", "a", "x")], []) is None


@pytest.mark.parametrize(
    "text, line",
    [
        ("", ""),
        ("\n\n  one\ntwo", "one"),
        (
            "WARNING: apt does not have a stable CLI interface.\nE: Unable to locate package x",
            "E: Unable to locate package x",
        ),
        ("[WARNING]: only warnings\n", "[WARNING]: only warnings"),
        (["list", "of lines"], "list"),
    ],
)
def test_first_line(text, line):
    assert failures.first_line(text) == line


# --- the exact shape of what the callbacks store ---------------------------------------

KEYS = {"msg", "stderr", "stdout", "rc", "item", "hidden"}


def test_one_line_keeps_a_line_of_exactly_the_limit_and_cuts_one_longer_to_the_limit():
    assert failures.one_line("x" * 300) == "x" * 300
    assert failures.one_line("x" * 301) == "x" * 299 + "…"
    assert failures.one_line("a  b\n c", limit=5) == "a b c"
    assert failures.one_line("abcdef", limit=5) == "abcd…"


def test_details_of_a_plain_failure_has_every_field():
    assert failures.details({"msg": "boom", "rc": 3, "stdout": "out\n", "stderr": "err\n"}) == {
        "msg": "boom",
        "stderr": "err",
        "stdout": "out",
        "rc": 3,
        "item": None,
        "hidden": False,
    }
    assert failures.details({}) == {"msg": "", "stderr": "", "stdout": "", "rc": None, "item": None, "hidden": False}


@pytest.mark.parametrize(
    "result",
    [
        {"censored": "hidden", "msg": "SECRET", "rc": 1},
        {"results": [{"failed": True, "_ansible_no_log": True, "msg": "SECRET", "rc": 1}]},
    ],
)
def test_details_of_a_no_log_result_has_every_field_and_nothing_of_its_output(result):
    assert failures.details(result) == {
        "msg": "",
        "stderr": "",
        "stdout": "",
        "rc": None,
        "item": None,
        "hidden": True,
    }


def test_a_loop_item_on_an_unreachable_host_is_the_one_that_says_why():
    result = {
        "results": [
            {"failed": False, "item": "ok"},
            {"unreachable": True, "msg": "ssh: connect to host x: No route to host", "item": "b"},
        ]
    }
    assert failures.cause(result) == "item b: ssh: connect to host x: No route to host"


def test_a_failed_loop_item_without_any_label_is_not_named():
    assert failures.cause({"results": [{"failed": True, "stderr": "boom"}]}) == "boom"


def test_a_long_item_label_is_cut_to_80_characters():
    label = "y" * 100
    d = failures.details({"results": [{"failed": True, "stderr": "boom", "_ansible_item_label": label}]})
    assert d["item"] == "y" * 79 + "…"


def test_record_has_every_field_with_empty_play_and_path_by_default():
    rec = failures.record("web1", "t", {"msg": "boom", "rc": 2})
    assert rec == {
        "host": "web1",
        "task": "t",
        "play": "",
        "path": "",
        "msg": "boom",
        "stderr": "",
        "stdout": "",
        "rc": 2,
        "item": None,
        "hidden": False,
        "unreachable": False,
        "cause": "boom",
        "line": "web1: task 't' failed: boom",
        "fix": failures.FIX,
    }
    assert failures.record("web1", "t", {}, play="P", path="/x/site.yml")["path"] == "/x/site.yml"


def test_unreachable_record_has_every_field():
    msg = "Failed to connect to the host via ssh: ssh: connect to host 10.0.0.1 port 22: Connection refused"
    rec = failures.unreachable_record("web1", "ping", msg, "10.0.0.1")
    first = "ssh: connect to host 10.0.0.1 port 22: Connection refused"
    assert rec == {
        "host": "web1",
        "task": "ping",
        "play": "",
        "path": "",
        "msg": first,
        "stderr": "",
        "stdout": "",
        "rc": None,
        "item": None,
        "hidden": False,
        "unreachable": True,
        "cause": first,
        "line": f"web1: unreachable: {first}",
        "fix": "check that the host is up and that SSH reaches it, then run again",
    }


@pytest.mark.parametrize("msg", [None, "", "   \n"])
def test_unreachable_without_a_message_says_so(msg):
    rec = failures.unreachable_record("web1", "ping", msg)
    assert rec["line"] == "web1: unreachable: no message"
    assert rec["cause"] == rec["msg"] == "no message"


def test_a_host_key_record_says_the_key_line_in_its_cause_cut_to_120_characters():
    long = "Host key verification failed for " + "z" * 200
    rec = failures.unreachable_record("web1", "ping", f"@@@ {long} @@@", "10.0.0.1", play="Web")
    key = long[:119] + "…"
    assert rec["cause"] == f"its SSH host key is unknown or has changed ({key})"
    assert rec["line"] == f"web1: {rec['cause']}"
    assert rec["unreachable"] and rec["play"] == "Web" and rec["msg"].startswith("@@@ Host key")


class _Manager:
    def __init__(self, hostvars):
        self.hostvars = hostvars
        self.calls = []

    def get_vars(self, **kwargs):
        self.calls.append(kwargs)
        if self.hostvars is None:
            raise RuntimeError("no variable manager")
        return self.hostvars


class _Play:
    def __init__(self, manager):
        self.manager = manager

    def get_variable_manager(self):
        return self.manager


class _Host:
    def __init__(self, hostvars):
        self.vars = hostvars


def test_address_of_reads_the_hosts_vars_with_group_vars_from_the_play():
    manager = _Manager({"ansible_host": "10.0.0.5", "ansible_port": 2222})
    play, host = _Play(manager), _Host({"ansible_host": "wrong"})
    assert failures.address_of(play, host) == ("10.0.0.5", 2222)
    assert manager.calls == [{"play": play, "host": host, "include_hostvars": False}]


def test_address_of_falls_back_to_the_hosts_own_vars():
    assert failures.address_of(_Play(_Manager(None)), _Host({"ansible_host": "10.0.0.6"})) == ("10.0.0.6", None)


def test_address_of_a_template_is_no_address():
    hostvars = {"ansible_host": "{{ lookup('x') }}", "ansible_port": "{{ port }}"}
    assert failures.address_of(_Play(_Manager(hostvars)), _Host({})) == (None, None)
    hostvars = {"ansible_host": "10.0.0.5", "ansible_port": "{{ port }}"}
    assert failures.address_of(_Play(_Manager(hostvars)), _Host({})) == ("10.0.0.5", None)
    hostvars = {"ansible_host": "{{ ip }}", "ansible_port": 2200}
    assert failures.address_of(_Play(_Manager(hostvars)), _Host({})) == (None, 2200)


def test_message_names_the_failed_hosts_of_the_recap_that_left_no_record():
    records = [_rec("web1", "a", "first")]
    assert failures.message(records, ["web1", "web3"]) == (
        "web1: task 'a' failed: first; fix it and run again; also failed: web3"
    )
