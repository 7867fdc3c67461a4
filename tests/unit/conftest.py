"""The unit tests need no package index and no network.

Every wheel a unit test resolves, downloads or installs comes from one
``--find-links`` directory this session fills with small wheels made on the spot
(tests/unit/wheelmaker.py):

- one per pin of examples/sampleapp/requirements.txt, same name and version, with a
  stub module (any attribute is a do-nothing callable, so ``sampleapp.wsgi`` imports);
- ``hatchling``: a minimal PEP 517 backend, so examples/sampleapp builds offline;
- ``uv`` at the controller's version, tagged for x86_64 hosts (shipped, never run).

uv and pip are pointed at that directory alone for the whole session (the
environment below: no index, offline, no user or site configuration, a fresh uv
cache), so a test that would reach for the network fails instead of passing on
whatever the machine has cached or configured.
"""

import os
from pathlib import Path

import pytest
from wheelmaker import write_wheel

from pyfleet.apps import requirement_lines
from pyfleet.wheelhouse import controller_uv_version

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sampleapp"

# A few real dependency edges, so the wheelhouse's closure check has something to follow.
REQUIRES = {
    "flask": ["werkzeug>=3.1", "jinja2>=3.1.2", "itsdangerous>=2.2", "click>=8.1.3", "blinker>=1.9"],
    "celery": ["billiard>=4.2.1,<5.0", "kombu>=5.5.2,<5.8", "vine>=5.1.0,<6.0", "click>=8.1.2,<9.0"],
    "uvicorn-worker": ["gunicorn>=20.1.0", "uvicorn>=0.15.0"],
}
EXTRAS = {"celery": {"redis": ["redis>=4.5.2,!=4.5.5"]}}
# Submodules the sample app imports (stubs too).
SUBMODULES = {"werkzeug": ["middleware/__init__.py", "middleware/proxy_fix.py"]}
HATCHLING_VERSION = "1.27.0"  # examples/sampleapp asks for hatchling>=1.25

STUB = '''"""A stand-in for {name} {version}, made by the unit tests: every attribute is a stub."""


class _Stub:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]  # used as a decorator
        return _Stub()

    def __getattr__(self, name):
        return _Stub()


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Stub
'''


def _pins():
    """(name, version) of every pin in the sample app's requirements file."""
    for _, line in requirement_lines((SAMPLE / "requirements.txt").read_text(encoding="utf-8")):
        name, _, version = line.split(";")[0].strip().partition("==")
        yield name, version


def make_find_links(directory):
    """Fill ``directory`` with the wheels described above; return it."""
    for name, version in _pins():
        module = name.replace("-", "_")
        files = {f"{module}/__init__.py": STUB.format(name=name, version=version)}
        files.update({f"{module}/{sub}": STUB.format(name=name, version=version) for sub in SUBMODULES.get(name, ())})
        write_wheel(directory, name, version, files, requires=REQUIRES.get(name, ()), extras=EXTRAS.get(name))
    backend = (Path(__file__).with_name("wheelmaker.py")).read_text(encoding="utf-8")
    write_wheel(directory, "hatchling", HATCHLING_VERSION, {"hatchling/__init__.py": "", "hatchling/build.py": backend})
    write_wheel(directory, "uv", controller_uv_version(), tag="py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64")
    return directory


@pytest.fixture(scope="session", autouse=True)
def local_wheels(tmp_path_factory):
    """The session's find-links directory, with uv and pip held to it (see the module docstring)."""
    links = make_find_links(tmp_path_factory.mktemp("find-links"))
    env = {
        "UV_OFFLINE": "1",
        "UV_FIND_LINKS": str(links),
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(tmp_path_factory.mktemp("uv-cache")),
        "UV_PYTHON_DOWNLOADS": "never",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(links),
        "PIP_CONFIG_FILE": os.devnull,  # no site or user pip.conf (extra indexes, constraints)
    }
    with pytest.MonkeyPatch.context() as patch:
        for key in (
            "UV_INDEX",
            "UV_INDEX_URL",
            "UV_DEFAULT_INDEX",
            "UV_EXTRA_INDEX_URL",
            "PIP_INDEX_URL",
            "PIP_EXTRA_INDEX_URL",
            "PIP_CONSTRAINT",
        ):
            patch.delenv(key, raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        yield links
