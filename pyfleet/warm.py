"""Load the Jinja filter and test plugins once, in ansible-playbook's main process.

Ansible forks a worker process per task and host. The first filter a worker's
template names makes it import every filter and test plugin file (Ansible's,
the collections' and pyfleet's, which import pyfleet.plan) to build its table
of short names; the worker exits and the next one does it again. A profile of
a no-op `site.yml` on the lab showed that as about 40 % of the workers' CPU.
Built once in the main process before a play's tasks fork, the table is
inherited by every worker (fork copies it).
"""

from ansible.plugins.loader import filter_loader, test_loader


def warm_plugin_caches():
    """Build the filter and test tables now (a no-op when they are built)."""
    for loader in (filter_loader, test_loader):
        # Ansible's own (private) method, the one call that fills the table a worker
        # would build; tests/unit/test_warm.py fails when an Ansible upgrade drops it.
        ensure = getattr(loader, "_ensure_non_collection_wrappers", None)
        if ensure:
            ensure()
