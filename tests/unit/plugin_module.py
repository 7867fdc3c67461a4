"""A plugin file of plugins/ for the unit tests, loaded once under its dotted path (``plugins.filter.pyfleet_acme``).

Ansible loads plugins from their paths under names of its own; the tests that call
a plugin directly load it here, under the name mutmut gives its mutants, so a
mutant of a plugin is one these tests can kill (see tests/mutants/python.py).
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load(rel):
    """The module of ``plugins/<kind>/<name>.py`` (``rel``), shared by every test file."""
    name = rel.removesuffix(".py").replace("/", ".")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / rel)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
