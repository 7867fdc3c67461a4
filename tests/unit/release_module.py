"""plugins/modules/pyfleet_release.py for the unit tests: loaded once, under the name mutmut matches.

The module is not in a package (Ansible ships it to hosts as a file), so the tests
load it from its path; every test file shares this one module object.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = "plugins.modules.pyfleet_release"


def _load():
    if NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(NAME, ROOT / "plugins" / "modules" / "pyfleet_release.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[NAME] = module
    return sys.modules[NAME]


rel = _load()
