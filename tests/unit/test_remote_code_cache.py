"""Mitogen's compiles on the hosts, kept between runs (pyfleet.remote_code_cache)."""

import os

import mitogen.core
import pytest

from pyfleet import remote_code_cache as cache

SOURCE = "ANSWER = 6 * 7\n"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(cache, "_directory", cache._private_directory())
    return tmp_path


def entries(home):
    return sorted(p for p in home.glob(".cache/pyfleet/code-*/*"))


def run(code):
    space = {}
    exec(code, space)
    return space["ANSWER"]


def test_a_compile_is_kept_and_the_next_one_read_back(home, monkeypatch):
    first = cache.cached_compile(SOURCE, "master:/x/mod.py", "exec", 0, 1)
    assert run(first) == 42 and len(entries(home)) == 1
    monkeypatch.setattr(cache, "_builtin_compile", None)  # a second compile would fail
    again = cache.cached_compile(SOURCE, "master:/x/mod.py", "exec", 0, True)
    assert run(again) == 42 and again.co_filename == "master:/x/mod.py"


def test_the_directory_is_the_users_own_and_private(home):
    cache.cached_compile(SOURCE, "m.py", "exec", 0, 1)
    (entry,) = entries(home)
    assert entry.parent.stat().st_mode & 0o777 == 0o700
    assert entry.parent.stat().st_uid == os.geteuid()


def test_changed_source_or_name_is_a_new_entry(home):
    cache.cached_compile(SOURCE, "m.py", "exec", 0, 1)
    cache.cached_compile(SOURCE.replace("7", "8"), "m.py", "exec", 0, 1)
    cache.cached_compile(SOURCE.encode(), "n.py", "exec", 0, 1)
    assert len(entries(home)) == 3


def test_a_damaged_entry_is_compiled_again(home):
    cache.cached_compile(SOURCE, "m.py", "exec", 0, 1)
    (entry,) = entries(home)
    entry.write_bytes(b"\x00garbage")
    assert run(cache.cached_compile(SOURCE, "m.py", "exec", 0, 1)) == 42


def test_a_failed_write_leaves_no_partial_file(home, monkeypatch):
    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.os, "replace", refuse)
    assert run(cache.cached_compile(SOURCE, "m.py", "exec", 0, 1)) == 42
    assert entries(home) == []


def test_other_compiles_pass_through(home):
    assert run(cache.cached_compile(SOURCE, "m.py", "exec")) == 42  # inherits the caller's flags
    assert cache.cached_compile("6 * 7", "m.py", "eval", 0, 1) is not None
    assert entries(home) == []


def test_a_directory_others_can_write_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cache._private_directory()
    (directory,) = tmp_path.glob(".cache/pyfleet/code-*")
    directory.chmod(0o777)
    assert cache._private_directory() is None


def test_a_directory_that_cannot_be_made_turns_caching_off(tmp_path, monkeypatch):
    (tmp_path / ".cache").write_text("a file where the directory would go")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache._private_directory() is None


def test_install_routes_mitogens_and_the_runners_compiles(home, monkeypatch):
    import ansible_mitogen.runner

    monkeypatch.setattr(mitogen.core, "compile", compile, raising=False)
    monkeypatch.setattr(ansible_mitogen.runner, "compile", compile, raising=False)
    cache.install()
    assert mitogen.core.compile is cache.cached_compile
    assert ansible_mitogen.runner.compile is cache.cached_compile


def test_install_leaves_the_runner_unimported_and_gives_it_the_cache_when_mitogen_imports_it(home, monkeypatch):
    import importlib.machinery
    import sys
    import types

    monkeypatch.delitem(sys.modules, cache.RUNNER, raising=False)  # as in a new interpreter on a host
    monkeypatch.setattr(mitogen.core, "compile", compile, raising=False)
    ran_with = []

    class Importer(mitogen.core.Importer):
        def __init__(self):  # only exec_module is used here
            pass

        def exec_module(self, module):
            ran_with.append((module.__spec__.name, vars(module).get("compile")))

    importer = Importer()
    monkeypatch.setattr(sys, "meta_path", [importer, *sys.meta_path])
    cache.install()
    # the SSH login interpreter of a become run stops here: a hop, with no runner to import
    assert cache.RUNNER not in sys.modules
    assert mitogen.core.compile is cache.cached_compile
    for name in (cache.RUNNER, "ansible.module_utils.basic"):
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, importer)
        importer.exec_module(module)  # what the import system calls for a module Mitogen sends
    assert ran_with == [(cache.RUNNER, cache.cached_compile), ("ansible.module_utils.basic", None)]
