"""pyfleet.module_tuples: Mitogen's prepared modules kept between runs, checked against their files."""

import importlib
import os
import sys
import zlib

import mitogen.master
import pytest

from pyfleet import module_tuples


class Router:
    def add_handler(self, **kwargs):
        pass


class Policy:
    def denied_raise(self, fullname):
        if fullname == "refused":
            raise mitogen.core.CallError("refused")

    def denied(self, fullname):
        return False


ORIGINAL = mitogen.master.ModuleResponder._build_tuple


@pytest.fixture
def package(tmp_path, monkeypatch):
    """shop (a package whose __init__ imports shop.prices) on sys.path; forgotten afterwards."""
    source = tmp_path / "src"
    (source / "shop").mkdir(parents=True)
    (source / "shop" / "__init__.py").write_text("from shop import prices\n")
    (source / "shop" / "prices.py").write_text("PRICE = 1\n")
    monkeypatch.syspath_prepend(str(source))
    importlib.import_module("shop")  # Mitogen lists only imports the multiplexer has loaded
    yield source / "shop"
    for name in [name for name in sys.modules if name == "shop" or name.startswith("shop.")]:
        del sys.modules[name]


@pytest.fixture
def kept(tmp_path):
    """A responder class whose preparations go through the cache; how often Mitogen's own ran."""
    prepared = []

    def counting(self, fullname):
        prepared.append(fullname)
        return ORIGINAL(self, fullname)

    build = module_tuples._kept_build_tuple(counting, str(tmp_path / "kept"))
    os.makedirs(tmp_path / "kept", mode=0o700)

    def new_responder():  # a new multiplexer: nothing in its own cache
        responder = mitogen.master.ModuleResponder(Router(), Policy())
        responder._build_tuple = build.__get__(responder)
        return responder

    return new_responder, prepared


def test_a_kept_module_is_what_mitogen_prepared_and_is_not_prepared_again(package, kept):
    new_responder, prepared = kept
    first = new_responder()._build_tuple("shop")
    second = new_responder()._build_tuple("shop")
    assert prepared == ["shop"]
    assert second == first
    name, pkg_present, path, compressed, related = second
    assert (name, pkg_present, path, related) == ("shop", ["prices"], str(package / "__init__.py"), ["shop.prices"])
    assert isinstance(compressed, mitogen.core.Blob)
    assert zlib.decompress(compressed) == b"from shop import prices\n"


def test_a_changed_imported_module_or_a_new_submodule_prepares_it_again(package, kept):
    new_responder, prepared = kept
    new_responder()._build_tuple("shop")
    (package / "prices.py").write_text("PRICE = 2  # a new size\n")
    new_responder()._build_tuple("shop")
    assert prepared == ["shop", "shop"]
    (package / "tax.py").write_text("RATE = 0\n")
    assert new_responder()._build_tuple("shop")[1] == ["prices", "tax"]
    assert prepared == ["shop", "shop", "shop"]


def test_a_damaged_entry_prepares_it_again(package, kept, tmp_path):
    new_responder, prepared = kept
    new_responder()._build_tuple("shop")
    (entry,) = (tmp_path / "kept").iterdir()
    entry.write_bytes(b"\x00damaged")
    assert new_responder()._build_tuple("shop")[0] == "shop"
    assert prepared == ["shop", "shop"]


def test_a_refusal_is_mitogens_each_time(kept, tmp_path):
    new_responder, prepared = kept
    with pytest.raises(mitogen.core.CallError):
        new_responder()._build_tuple("refused")
    assert new_responder()._build_tuple("no_such_module_anywhere")[2] is None
    assert new_responder()._build_tuple("no_such_module_anywhere")[2] is None
    assert prepared == ["no_such_module_anywhere", "no_such_module_anywhere"]
    assert list((tmp_path / "kept").iterdir()) == []
