"""Mitogen's linear strategy for plays on hosts; Ansible's own for plays on the controller.

Molecule's podman driver creates its containers from a `connection: local` play that
starts podman as async jobs and polls them with async_status: under Mitogen that
poll never sees the jobs finish. The molecule scenarios use this strategy, so their
converge, idempotence and prepare plays get Mitogen's speed (one interpreter per
host instead of a `podman exec` per task) and create/destroy keep working.
"""

import ansible_mitogen.loaders
import ansible_mitogen.strategy

from pyfleet.batch import BatchedWorkers
from pyfleet.skips import SkipWithoutWorker
from pyfleet.warm import prepare, warm_play

prepare()  # caches and patches, before Mitogen's multiplexer and the workers fork

Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(SkipWithoutWorker, ansible_mitogen.strategy.StrategyMixin, BatchedWorkers, Linear):
    """mitogen_linear, except that plays with `connection: local` run as plain linear."""

    def run(self, iterator, play_context, result=0):
        warm_play(iterator)  # before the play's tasks fork their workers
        if iterator._play.connection == "local":
            return Linear.run(self, iterator, play_context)
        self._batching = True  # a worker per task and group of hosts (pyfleet.batch)
        return super().run(iterator, play_context, result)
