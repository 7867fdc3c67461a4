"""The Mitogen linear strategy, loaded from the mitogen package in the project's venv.

Mitogen ships its strategy plugins inside site-packages; this shim (the same
code as mitogen's own proxy module) lets ansible.cfg name a project path
instead of a Python-version-specific one.
"""

import ansible_mitogen.loaders
import ansible_mitogen.strategy

from pyfleet.warm import remember_module_scans, warm_plugin_caches

remember_module_scans()  # in the main process, where Mitogen's module scans run

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    """Ansible's linear strategy, running modules through Mitogen."""

    def run(self, iterator, play_context, result=0):
        warm_plugin_caches()  # before the play's tasks fork their workers
        return super().run(iterator, play_context, result)
