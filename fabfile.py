"""Fabric looks for fabfile.py; pyfleet's commands live in tasks.py."""

from tasks import ns  # noqa: F401  (Fabric loads the `ns` collection from here)
