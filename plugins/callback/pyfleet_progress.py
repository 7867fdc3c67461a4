"""Compact progress for `fab deploy`/`fab rollback`, and a JSON summary for the final report."""

import json
import os
import sys
import time
from pathlib import Path

from ansible.plugins.callback import CallbackBase

# The pyfleet of this checkout, not of the one the venv's editable install names (a git worktree).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pyfleet import failures

DOCUMENTATION = """
name: pyfleet_progress
type: stdout
short_description: one line per play (batch), per change and per failure; a JSON summary
description:
  - Prints a line when a play (a batch of a rolling deploy) starts and ends, a line per
    host and task that changed or failed, and writes a summary (plays with their
    durations, hosts switched, failures with their message, set_stats data) to the
    file named by the environment variable PYFLEET_SUMMARY.
"""


class CallbackModule(CallbackBase):
    """See DOCUMENTATION."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "pyfleet_progress"

    def __init__(self):
        super().__init__()
        self.plays = []
        self.failures = []
        self.changed = {}
        self._play_start = None
        self._play = None

    def _close_play(self):
        if self.plays and self.plays[-1]["seconds"] is None:
            play = self.plays[-1]
            play["seconds"] = round(time.monotonic() - self._play_start, 1)
            hosts = ", ".join(play["hosts"]) or "no hosts"
            self._display.display(f"  done in {play['seconds']} s ({hosts})")

    def v2_playbook_on_play_start(self, play):
        self._close_play()
        self._play = play
        name = play.get_name().strip()
        same = [p for p in self.plays if p["name"] == name]
        label = f"{name} (batch {len(same) + 1})" if same or play.serial else name
        self.plays.append({"name": name, "label": label, "hosts": [], "seconds": None})
        self._play_start = time.monotonic()
        self._display.display(f"> {label}")

    def _seen(self, host):
        if self.plays and host not in self.plays[-1]["hosts"]:
            self.plays[-1]["hosts"].append(host)

    def v2_runner_on_ok(self, result):
        host = result._host.get_name()
        self._seen(host)
        if result._result.get("changed"):
            task = result._task.get_name().strip()
            self.changed.setdefault(host, []).append(task)
            self._display.display(f"  {host}: {task}")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        host = result.host.get_name()
        self._seen(host)
        if ignore_errors:
            return
        play = self.plays[-1]["name"] if self.plays else ""
        rec = failures.record(host, result.task.get_name().strip(), result.result, play, result.task.get_path() or "")
        self.failures.append(rec)
        self._display.display(f"  {host}: FAILED {rec['task']}: {rec['cause']}", color="red")

    def v2_runner_on_unreachable(self, result):
        host = result.host.get_name()
        address, port = failures.address_of(self._play, result.host)
        play = self.plays[-1]["name"] if self.plays else ""
        task = result.task.get_name().strip()
        rec = failures.unreachable_record(host, task, result.result.get("msg"), address, port, play)
        self.failures.append(rec)
        self._display.display(f"  {host}: UNREACHABLE {rec['cause']}", color="red")

    def v2_playbook_on_stats(self, stats):
        self._close_play()
        hosts = sorted(stats.processed.keys())
        summary = {
            "plays": [{"name": p["label"], "hosts": p["hosts"], "seconds": p["seconds"]} for p in self.plays],
            "changed": self.changed,
            "failures": self.failures,
            "stats": {h: stats.summarize(h) for h in hosts},
            "custom": stats.custom.get("_run", {}) if stats.custom else {},
        }
        path = os.environ.get("PYFLEET_SUMMARY")
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(summary, fh, indent=1, default=str)
