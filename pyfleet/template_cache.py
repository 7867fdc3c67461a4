"""The controller's Jinja compiles, kept between worker processes and between runs.

Ansible forks a worker process per task and host, and each worker compiles every
template and `when` expression it meets (Jinja parses the text, generates Python
source, compiles that): the same few hundred texts for every host, on every run.
On the 6-host lab that was about 2.3 s of a no-op `site.yml`'s 11 s of controller
CPU. install() keeps the compiled code in .cache/jinja-code-<versions>/, one file
per hash of the text and of everything the generated code depends on at compile
time (the environment's syntax settings, whether backslashes are escaped, which
filters and tests take a context); a worker reads it back in well under a
millisecond instead of compiling.

A hit is exact: the key names Python's, Jinja's and ansible-core's versions and
the environment's settings, and each entry lists the filters and tests its
template names with the argument each one was compiled to pass; they are looked
up again (as the compile would) and a changed one compiles the text again. A
text that fails to compile is not kept, so its error is Ansible's own each time.
Template debugging (Ansible's `_debuggable_template_source`) bypasses the cache.
"""

import hashlib
import importlib.util
import marshal
import os
import threading

import ansible.release
import jinja2
from ansible._internal._templating import _jinja_bits
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from jinja2.utils import _PassArg

from pyfleet.remote_code_cache import private_directory, read_entry, write_entry
from pyfleet.shell import ROOT

_FORMAT = 1  # raise when the entries' layout changes
_VERSIONS = hashlib.sha256(
    repr((_FORMAT, importlib.util.MAGIC_NUMBER, jinja2.__version__, ansible.release.__version__)).encode()
).hexdigest()[:12]
DIRECTORY = ROOT / ".cache" / f"jinja-code-{_VERSIONS}"

# Everything on an environment that the parser and code generator read.
_SYNTAX = (
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
    "line_statement_prefix",
    "line_comment_prefix",
    "trim_blocks",
    "lstrip_blocks",
    "newline_sequence",
    "keep_trailing_newline",
    "optimized",
    "is_async",
    "sandboxed",
    "autoescape",
)

_directory = None
_kept = {}  # key -> (code, dependencies): the directory's entries, read once before the workers fork
_captured = threading.local()  # compile_expression's code, handed up from compile()


def _pass_arg(environment, kind, name):
    """What the code generator passes the filter or test ``name`` first: (found, context/environment/None)."""
    func = getattr(environment, kind).get(name)
    passed = _PassArg.from_obj(func)
    return (func is not None, passed.name if passed else None)


def _dependencies(environment, template):
    """The filters and tests ``template`` (a parsed nodes.Template) names, with what each is passed."""
    names = {("filters", node.name) for node in template.find_all(nodes.Filter)}
    names |= {("tests", node.name) for node in template.find_all(nodes.Test)}
    return tuple((kind, name, *_pass_arg(environment, kind, name)) for kind, name in sorted(names))


def _key(environment, *what):
    """The cache key of compiling ``what`` in ``environment``, or None when it must not be cached."""
    if _directory is None or getattr(environment, "_debuggable_template_source", False):
        return None
    if not isinstance(environment.autoescape, bool):
        return None  # a function of the template's name: decided per template
    compiling = _jinja_bits._TemplateCompileContext.current(optional=True)
    finalize = _PassArg.from_obj(environment.finalize) if environment.finalize else None
    settings = (
        type(environment).__qualname__,
        environment.code_generator_class.__qualname__,
        tuple(getattr(environment, name) for name in _SYNTAX),
        tuple(sorted(environment.extensions)),
        tuple(sorted(environment.intercepted_binops)),
        tuple(sorted(environment.intercepted_unops)),
        bool(environment.finalize),
        finalize.name if finalize else None,
        compiling.escape_backslashes if compiling else None,
        _jinja_bits._TemplateConfig.allow_embedded_templates,
    )
    return hashlib.sha256(repr((settings, what)).encode("utf-8", "surrogateescape")).hexdigest()


def _load(data):
    """An entry's (code, dependencies), or None when it is damaged."""
    try:
        code, dependencies = marshal.loads(data)
        return code, tuple(dependencies)
    except Exception:
        return None


def _read(environment, key):
    """The kept code for ``key``, or None when there is none or a filter or test it names changed."""
    entry = _kept.get(key)
    if entry is None:  # kept since the run started (by another worker), or not at all
        data = read_entry(os.path.join(_directory, key))
        entry = None if data is None else _load(data)
        if entry is None:
            return None
        _kept[key] = entry  # this worker's other hosts compile the same texts
    code, dependencies = entry
    try:
        if all(_pass_arg(environment, kind, name) == tuple(rest) for kind, name, *rest in dependencies):
            return code
    except Exception:  # a lookup the compile will report itself
        pass
    return None


def _keep(key, code, dependencies):
    write_entry(os.path.join(_directory, key), marshal.dumps((code, dependencies)))
    _kept[key] = (code, tuple(dependencies))


def preload():
    """Read every entry into memory (in the main process, before workers fork: they inherit it).

    About 400 entries, a few ms; without it every worker opened one file per
    compile (about 4,900 opens in a no-op `site.yml` on 24 hosts, 10 % of the
    workers' busy time in a py-spy profile).
    """
    if _directory is None:
        return
    try:
        names = [entry.name for entry in os.scandir(_directory) if len(entry.name) == 64]
    except OSError:
        return
    for name in names:
        if name not in _kept:
            data = read_entry(os.path.join(_directory, name))
            entry = None if data is None else _load(data)
            if entry is not None:
                _kept[name] = entry


def _cached_compile(compile_):
    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        if isinstance(source, nodes.Template):  # an expression's tree (compile_expression)
            code = compile_(self, source, name, filename, raw, defer_init)
            if getattr(_captured, "slot", None) is not None and not raw:
                _captured.slot.append((code, _dependencies(self, source)))
            return code
        key = (
            None
            if raw or not isinstance(source, str)
            else _key(self, "template", str(source), name, filename, defer_init)
        )
        if key is None:
            return compile_(self, source, name, filename, raw, defer_init)
        code = _read(self, key)
        if code is None:
            code = compile_(self, source, name, filename, raw, defer_init)  # its errors as Jinja reports them
            _keep(key, code, _dependencies(self, self._parse(source, name, filename)))
        return code

    compile.pyfleet_cached = True
    return compile


def _cached_compile_expression(compile_expression):
    def compile_expression_(self, source, undefined_to_none=True):
        key = _key(self, "expression", str(source), undefined_to_none)
        if key is None:
            return compile_expression(self, source, undefined_to_none)
        code = _read(self, key)
        if code is not None:
            template = self.template_class.from_code(self, code, self.make_globals(None), None)
            return TemplateExpression(template, undefined_to_none)
        _captured.slot = []
        try:
            expression = compile_expression(self, source, undefined_to_none)
            if len(_captured.slot) == 1:
                _keep(key, *_captured.slot[0])
        finally:
            _captured.slot = None
        return expression

    return compile_expression_


def install(directory=DIRECTORY):
    """Route ansible-core's Jinja compiles through the cache in ``directory`` (before workers fork)."""
    global _directory
    if _directory != str(directory):
        _kept.clear()
    _directory = private_directory(str(directory))
    environment = _jinja_bits.AnsibleEnvironment
    if not getattr(environment.compile, "pyfleet_cached", False):  # once per process
        environment.compile = _cached_compile(environment.compile)
        environment.compile_expression = _cached_compile_expression(environment.compile_expression)
