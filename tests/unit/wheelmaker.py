"""Small wheels for the unit tests, made on the spot (no package index).

Two uses of this one file:

- the tests' session fixture (tests/unit/conftest.py) calls ``write_wheel`` to fill
  a ``--find-links`` directory with stand-ins for the sample app's pinned
  dependencies and for uv;
- the same file, shipped as ``hatchling/build.py`` in a stand-in ``hatchling``
  wheel, is the PEP 517 backend that examples/sampleapp's pyproject.toml names, so
  ``uv build`` and ``pip wheel`` build the sample app offline. It reads what that
  pyproject uses: ``[project]`` name, version, requires-python, dependencies,
  optional-dependencies, and ``[tool.hatch.build.targets.wheel] packages``.

Wheels are reproducible: sorted members, fixed permissions, timestamps from
``SOURCE_DATE_EPOCH`` (1980-01-01 without it), no compression.
"""

import base64
import hashlib
import os
import re
import time
import zipfile
from pathlib import Path


def _normal(name):
    """A project name as wheel file names and dist-info directories spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def write_wheel(
    directory, name, version, files=None, requires=(), extras=None, tag="py3-none-any", requires_python=None
):
    """Write ``<name>-<version>-<tag>.whl`` into ``directory``; return its path.

    ``files``: {path inside the wheel: text or bytes}; ``requires``: Requires-Dist
    lines; ``extras``: {extra: [requirement, ...]}.
    """
    dist_info = f"{_normal(name)}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.3", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    metadata += [f"Requires-Dist: {req}" for req in requires]
    for extra, reqs in sorted((extras or {}).items()):
        metadata.append(f"Provides-Extra: {extra}")
        metadata += [f'Requires-Dist: {req} ; extra == "{extra}"' for req in reqs]
    members = {path: data if isinstance(data, bytes) else data.encode() for path, data in (files or {}).items()}
    members[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    members[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: pyfleet-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    ).encode()
    record = []
    for path, data in sorted(members.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    stamp = time.gmtime(max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800))[:6]
    path = Path(directory) / f"{_normal(name)}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for member, data in sorted(members.items()):
            info = zipfile.ZipInfo(member, date_time=stamp)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return path


# --- the PEP 517 backend (as hatchling.build) --------------------------------------


def _project():
    import tomllib  # the backend runs on the build's Python (3.11+), the tests too

    data = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))
    wheel_target = data.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    return data["project"], wheel_target.get("packages", [])


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project, packages = _project()
    files = {}
    for package in packages:
        for path in sorted(Path(package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[path.as_posix()] = path.read_bytes()
    wheel = write_wheel(
        wheel_directory,
        project["name"],
        project["version"],
        files,
        requires=project.get("dependencies", []),
        extras=project.get("optional-dependencies", {}),
        requires_python=project.get("requires-python"),
    )
    return wheel.name
