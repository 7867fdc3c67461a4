"""The Mitogen linear strategy, loaded from the mitogen package in the project's venv.

Mitogen ships its strategy plugins inside site-packages; this shim (the same
code as mitogen's own proxy module) lets ansible.cfg name a project path
instead of a Python-version-specific one. It also passes over Ansible's own
argument check at the start of each pyfleet role once the fleet plan has made
it for the whole inventory (pyfleet.role_arguments).
"""

import ansible_mitogen.loaders
import ansible_mitogen.strategy

from pyfleet.batch import BatchedWorkers
from pyfleet.role_arguments import checked_by_plan
from pyfleet.skips import SkipWithoutWorker
from pyfleet.warm import prepare, warm_play

prepare()  # caches and patches, before Mitogen's multiplexer and the workers fork

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(SkipWithoutWorker, ansible_mitogen.strategy.StrategyMixin, BatchedWorkers, Base):
    """Ansible's linear strategy, running modules through Mitogen."""

    def run(self, iterator, play_context, result=0):
        warm_play(iterator)  # before the play's tasks fork their workers
        self._batching = True  # a worker per task and group of hosts (pyfleet.batch)
        return super().run(iterator, play_context, result)

    def _get_next_task_lockstep(self, hosts, iterator):
        """Linear's next task for ``hosts``, past role argument checks the plan made already."""
        facts = self._variable_manager._nonpersistent_fact_cache  # set_fact's, where pyfleet_plan is
        while True:
            host_tasks = super()._get_next_task_lockstep(hosts, iterator)
            if not host_tasks or not all(
                checked_by_plan(task.action, task.args, facts.get(host.name, {}).get("pyfleet_plan"))
                for host, task in host_tasks
            ):
                return host_tasks
