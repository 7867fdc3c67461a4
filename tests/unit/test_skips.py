"""A false `when` is answered in ansible-playbook's main process, without a worker."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from ansible._internal._datatag._tags import TrustedAsTemplate
from ansible.inventory.host import Host
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.task import Task
from ansible.plugins.loader import init_plugin_loader

from pyfleet import skips

ROOT = Path(__file__).resolve().parents[2]
LOADER = DataLoader()
init_plugin_loader()  # the collection loader, as the ansible commands set it up


def task(**fields):
    """A task as a playbook would load it (its `when` text trusted as a template, as a playbook's is)."""
    when = fields.get("when")
    if when is not None:
        fields["when"] = [TrustedAsTemplate().tag(c) for c in (when if isinstance(when, list) else [when])]
    return Task.load({"name": "t", "ansible.builtin.debug": {"msg": "hi"}, **fields}, loader=LOADER)


@pytest.mark.parametrize(
    "fields, decidable",
    [
        ({"when": "flag"}, True),
        ({}, False),  # nothing to decide
        ({"when": "item == 2", "loop": [1, 2]}, False),  # each item decides
        ({"when": "flag", "with_items": [1]}, False),
        ({"when": "flag", "delegate_to": "web1"}, False),  # the worker works out the delegated host
        ({"when": "ansible_user == 'root'"}, False),  # the worker sets it from the task's keywords
        ({"when": ["flag", "ansible_become"]}, False),
    ],
)
def test_what_the_main_process_decides(fields, decidable):
    assert skips.decidable(task(**fields)) is decidable


def test_an_include_is_decided_as_a_task():
    include = Task.load({"ansible.builtin.include_tasks": "x.yml", "when": "flag"}, loader=LOADER)
    assert skips.decidable(include)


def test_a_false_when_gives_the_workers_skipped_result():
    result = skips.skipped_result(task(when="flag"), {"flag": False}, LOADER)
    assert result == {
        "changed": False,
        "skipped": True,
        "skip_reason": "Conditional result was False",
        "false_condition": "flag",
        "_ansible_no_log": False,
    }


def test_a_true_when_or_an_error_goes_to_the_worker():
    assert skips.skipped_result(task(when="flag"), {"flag": True}, LOADER) is None
    assert skips.skipped_result(task(when="no_such_variable == 1"), {}, LOADER) is None
    assert skips.skipped_result(task(when="flag", loop=[1]), {"flag": False}, LOADER) is None


def test_a_secret_tasks_skip_is_censored_as_the_worker_would():
    result = skips.skipped_result(task(when="flag", no_log=True), {"flag": False}, LOADER)
    assert result["_ansible_no_log"] is True


class Recorder:
    def __init__(self):
        self.calls = []

    def send_callback(self, name, *args):
        self.calls.append((name, args))

    def send_task_result(self, result):
        self.calls.append(("result", result))


class Linear:
    def _queue_task(self, host, task, task_vars, play_context):
        self.forked.append(task)


class Strategy(skips.SkipWithoutWorker, Linear):
    def __init__(self):
        self._loader = LOADER
        self._queued_task_cache = {}
        self._tqm = self._final_q = Recorder()
        self._pending_results = 0
        self.forked = []


def test_a_skip_costs_no_worker_and_reaches_the_results_queue():
    strategy, host, skipped = Strategy(), Host("web1"), task(when="flag")
    strategy._queue_task(host, skipped, {"flag": False}, None)
    assert strategy.forked == []
    assert strategy._pending_results == 1  # the strategy waits for it like any result
    assert strategy._queued_task_cache[("web1", skipped._uuid)]["task"] is skipped
    (start, _), (kind, result) = strategy._tqm.calls
    assert (start, kind) == ("v2_runner_on_start", "result")
    assert result._return_data["skipped"] is True
    assert result.task_fields["when"] == ["flag"]


def test_a_task_that_runs_is_queued_as_before():
    strategy, runs = Strategy(), task(when="flag")
    strategy._queue_task(Host("web1"), runs, {"flag": True}, None)
    assert strategy.forked == [runs] and strategy._tqm.calls == []


def test_ansible_playbook_with_pyfleets_strategy_reports_skips_as_ansible_does():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json")
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "fixtures/skips/play.yml"],
        cwd=Path(__file__).parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    stats = json.loads(out.stdout)["stats"]["localhost"]
    # The skipped command (it would fail), the loop, the undefined name (a failure,
    # ignored, with Ansible's message), the skipped include and the asserts of their results.
    assert (stats["skipped"], stats["ignored"], stats["failures"], stats["ok"]) == (2, 1, 0, 4)
