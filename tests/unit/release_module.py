"""plugins/modules/pyfleet_release.py for the unit tests: loaded once, under the name mutmut matches.

The module is not in a package (Ansible ships it to hosts as a file), so the tests
load it from its path; every test file shares this one module object.
"""

import importlib.util
import sys
import zipfile
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


# A pure-Python wheel with one module (tiny.py: VALUE = 42), for builds that need no package index.
def tiny_wheel(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tiny.py", "VALUE = 42\n")
        zf.writestr("tiny-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n")
        zf.writestr(
            "tiny-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr("tiny-1.0.dist-info/RECORD", "")
