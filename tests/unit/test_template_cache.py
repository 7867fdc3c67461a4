"""The controller's Jinja compiles, kept between workers and runs (pyfleet.template_cache)."""

import jinja2
import pytest
from ansible._internal._templating import _jinja_bits
from ansible.errors import AnsibleTemplateSyntaxError
from ansible.template import Templar, trust_as_template

from pyfleet import template_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    environment = _jinja_bits.AnsibleEnvironment
    monkeypatch.setattr(environment, "compile", environment.compile)  # put back after the test
    monkeypatch.setattr(environment, "compile_expression", environment.compile_expression)
    monkeypatch.setattr(template_cache, "_directory", None)
    monkeypatch.setattr(template_cache, "_kept", {})
    template_cache.install(tmp_path / "jinja")
    return tmp_path / "jinja"


@pytest.fixture
def no_compiler(monkeypatch):
    """Make Jinja's own compile fail: whatever still works came from the cache."""

    def refuse(*args, **kwargs):
        raise AssertionError("compiled again")

    def forbid():
        monkeypatch.setattr(jinja2.Environment, "_generate", refuse)

    return forbid


def render(text, **variables):
    return Templar(variables=variables).template(trust_as_template(text))


def evaluate(expression, **variables):
    return Templar(variables=variables).evaluate_expression(trust_as_template(expression))


def test_a_template_is_compiled_once_and_read_back(cache, no_compiler):
    assert render("{{ name | upper }}-{{ n + 1 }}", name="web", n=1) == "WEB-2"
    assert len(list(cache.iterdir())) == 1
    no_compiler()
    assert render("{{ name | upper }}-{{ n + 1 }}", name="db", n=41) == "DB-42"


def test_an_expression_is_compiled_once_and_read_back(cache, no_compiler):
    assert evaluate("n is divisibleby 3 and name | length > 2", n=9, name="web") is True
    assert len(list(cache.iterdir())) == 1
    no_compiler()
    assert evaluate("n is divisibleby 3 and name | length > 2", n=8, name="web") is False


def test_a_text_that_does_not_compile_is_not_kept(cache):
    for _ in range(2):  # Ansible's own error, both times
        with pytest.raises(AnsibleTemplateSyntaxError):
            render("{{ name | upper }")
    assert list(cache.iterdir()) == []


def test_an_entry_whose_filter_now_takes_a_context_is_compiled_again(cache):
    render("{{ name | upper }}", name="web")
    (entry,) = cache.iterdir()
    code, dependencies = template_cache.marshal.loads(entry.read_bytes())
    assert dependencies == (("filters", "upper", True, None),)
    entry.write_bytes(template_cache.marshal.dumps((code, (("filters", "upper", True, "context"),))))
    template_cache._kept.clear()  # another run: what it knows comes from the directory
    environment = _jinja_bits.AnsibleEnvironment()
    assert template_cache._read(environment, entry.name) is None  # compiled again on use
    assert render("{{ name | upper }}", name="web") == "WEB"


def test_a_damaged_entry_is_compiled_again(cache):
    render("{{ name }}!", name="web")
    (entry,) = cache.iterdir()
    entry.write_bytes(b"\x00garbage")
    template_cache._kept.clear()
    template_cache.preload()
    assert render("{{ name }}!", name="db") == "db!"


def test_preloaded_entries_are_read_from_memory(cache, no_compiler, monkeypatch):
    """The main process reads the directory once; its workers (forked after) open no file to use it."""
    render("{{ name | upper }}", name="web")
    evaluate("count > 2", count=3)
    template_cache._kept.clear()  # a new run
    template_cache.preload()
    assert len(template_cache._kept) == 2
    monkeypatch.setattr(template_cache, "read_entry", lambda path: pytest.fail(f"opened {path}"))
    no_compiler()
    assert render("{{ name | upper }}", name="db") == "DB"
    assert evaluate("count > 2", count=1) is False


def test_the_key_names_the_syntax_and_the_backslash_escaping(cache):
    environment = _jinja_bits.AnsibleEnvironment()
    other = environment.overlay(variable_start_string="[[", variable_end_string="]]")
    key = template_cache._key(environment, "template", "{{ x }}")
    assert key == template_cache._key(environment, "template", "{{ x }}")
    assert key != template_cache._key(other, "template", "{{ x }}")
    assert key != template_cache._key(environment, "template", "{{ y }}")
    with _jinja_bits._TemplateCompileContext(escape_backslashes=True):
        escaped = template_cache._key(environment, "template", "{{ x }}")
    with _jinja_bits._TemplateCompileContext(escape_backslashes=False):
        assert escaped != template_cache._key(environment, "template", "{{ x }}")


def test_an_untrusted_directory_caches_nothing(tmp_path, cache):
    cache.chmod(0o755)
    template_cache.install(cache)
    assert template_cache._directory is None
    assert render("{{ name }}", name="web") == "web"
    assert list(cache.iterdir()) == []
