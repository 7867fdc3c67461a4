"""Record each failed task and unreachable host as JSON, for the one line a failed `fab` run ends with."""

import json
import os
import sys
from pathlib import Path

from ansible.plugins.callback import CallbackBase

# The pyfleet of this checkout, not of the one the venv's editable install names (a git worktree).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pyfleet import failures

DOCUMENTATION = """
name: pyfleet_failures
type: notification
short_description: records each failure (host, task, cause) as JSON for pyfleet's last line
description:
  - For each failed task (not an ignored one) and each unreachable host, records host, task,
    play, the module's msg, the first useful line of stderr and of stdout, rc, a loop's first
    failed item, and the cause and line that pyfleet.failures makes of them; at the end of the
    run, the hosts that ended failed. A no_log task's output stays hidden.
  - Writes them to the file named by the environment variable PYFLEET_FAILURES after every
    failure (so an interrupted run still tells), and does nothing without it.
  - pyfleet.ansible.playbook enables it (ANSIBLE_CALLBACKS_ENABLED) and reads the file.
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED
"""


class CallbackModule(CallbackBase):
    """See DOCUMENTATION."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "pyfleet_failures"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.path = os.environ.get("PYFLEET_FAILURES")
        self.failures = []
        self.failed_hosts = None
        self.play = None

    def v2_playbook_on_play_start(self, play):
        self.play = play

    def _play_name(self):
        return self.play.get_name().strip() if self.play else ""

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:  # stops nothing, so it is not the reason a run failed
            return
        task = result.task
        host = result.host.get_name()
        self._add(
            failures.record(host, task.get_name().strip(), result.result, self._play_name(), task.get_path() or "")
        )

    def v2_runner_on_unreachable(self, result):
        address, port = failures.address_of(self.play, result.host)
        self._add(
            failures.unreachable_record(
                result.host.get_name(),
                result.task.get_name().strip(),
                result.result.get("msg"),
                address,
                port,
                self._play_name(),
            )
        )

    def v2_playbook_on_stats(self, stats):
        self.failed_hosts = sorted(h for h in stats.processed if stats.failures.get(h) or stats.dark.get(h))
        self._write()

    def _add(self, rec):
        self.failures.append(rec)
        self._write()

    def _write(self):
        if not self.path:
            return
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"failures": self.failures, "failed_hosts": self.failed_hosts}, fh, indent=1, default=str)
        os.replace(tmp, self.path)  # playbook() never reads half a file
