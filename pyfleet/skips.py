"""A task whose `when` is false on a host costs no worker process.

Ansible forks a worker for every task and host, also for one that only finds its
`when` false and returns "skipped". On this project's 2-core lab a fork of
ansible-playbook costs about 11 ms in the main process and the worker as much
again (copy-on-write faults, the task's set-up); a no-op `site.yml` on the
6-host lab had 45 such workers of 245 (the apt proxy, the locale, the hosts
that do not run beat or Flower, the removal summary).

pyfleet's strategies evaluate the `when` first, in the main process, with the
variables the worker would get. When it is false there, the strategy hands
Ansible the same "skipped" result the worker would have sent, through the same
results queue, so callbacks, statistics and run_once behave as before. Any doubt
goes to the worker as usual: a loop (each item has its own `when`), delegation,
a condition naming a connection variable (the worker sets those from the
task's keywords first), a condition that fails to evaluate.
"""

from ansible import constants as C
from ansible._internal._templating._engine import TemplateEngine  # what the worker uses
from ansible.executor.task_result import _RawTaskResult

# Connection and privilege variables: the worker rewrites them from the task's
# keywords (become, remote_user, ...) before it evaluates `when`.
_WORKER_SET = frozenset(name for names in C.MAGIC_VARIABLE_MAPPING.values() for name in names) | {
    "ansible_delegated_vars",
    "ansible_search_path",
}


def decidable(task):
    """True when the main process can evaluate ``task``'s `when` exactly as a worker would."""
    # An include is decided the same way: the worker evaluates its `when` first, and
    # Ansible expands no file for a skipped include result.
    if not task.when or task.loop_with or task.loop is not None or task.delegate_to:
        return False
    if task.action in C._ACTION_META:
        return False
    text = " ".join(str(condition) for condition in task.when)
    return not any(name in text for name in _WORKER_SET)


def skipped_result(task, task_vars, loader):
    """The worker's result for ``task`` when its `when` is false with ``task_vars``, else None."""
    if not decidable(task):
        return None
    context = {}
    try:
        if task._resolve_conditional(task.when, task_vars, result_context=context):
            return None
    except Exception:  # an error is the worker's to report, with its usual message
        return None
    result = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"} | context
    task.update_result_no_log(TemplateEngine(loader=loader, variables=task_vars), result)
    return result


def squashed_fields(task):
    """The task's attributes as a worker sends them (inherited ones resolved)."""
    copy = task.copy()
    copy.squash()
    return copy.dump_attrs()


def queued_here(strategy, host, task, task_vars, play_context):
    """What Ansible's _queue_task records of a queued task besides its fork.

    The queued-task record the results thread looks the task up in, the start
    callback, the count of results the strategy waits for.
    """
    strategy._queued_task_cache[(host.name, task._uuid)] = {
        "host": host,
        "task": task,
        "task_vars": task_vars,
        "play_context": play_context,
    }
    strategy._tqm.send_callback("v2_runner_on_start", host, task)
    strategy._pending_results += 1


class SkipWithoutWorker:
    """Strategy mixin: a false `when` is answered in the main process (see the module's text)."""

    def _queue_task(self, host, task, task_vars, play_context):
        result = skipped_result(task, task_vars, self._loader)
        if result is None:
            return super()._queue_task(host, task, task_vars, play_context)
        # What _queue_task and the worker do, less the fork: the records, the result.
        queued_here(self, host, task, task_vars, play_context)
        self._final_q.send_task_result(
            _RawTaskResult(host=host, task=task, return_data=result, task_fields=squashed_fields(task))
        )
        return None
