"""Mitogen's SSH login interpreters used only as a hop to sudo: not set up as task runners.

With `become`, Mitogen reaches a host through two interpreters: one for the SSH
user, and through it one for root (sudo). ansible_mitogen sets up each new
interpreter to run tasks (ansible_mitogen.target.init_child): it imports
ansible_mitogen.target with ansible-core's module_utils (about 60 modules) and
forks a "fork parent" for isolated module runs. The login interpreter of a
`become` run never runs a task; on the lab, its set-up was about a third of a
host's CPU at first contact (0.13 s of the login interpreter's, 0.38 s per host
for sshd, both interpreters and a ping).

install() patches ansible_mitogen's ContextService (in the multiplexer, which forks
from ansible-playbook after the strategy loads): the interpreters a connection
stack names before its last one are started without init_child; when a later
task uses one as its last (a task without become), init_child runs then, once.
"""

import hashlib
import inspect
import threading

# The hash of the ContextService._connect (ansible_mitogen 0.3.54) that the hop path
# below copies, less its init_child call. Another version is left as it is: every
# interpreter set up as a task runner, slower and right; test_mitogen_hops fails then.
MIRRORED_CONNECT = "1e117fcd044f26d2d104ef82d971acb84cde824c15d0bd035201c4693f43d424"

_hops = threading.local()  # the specs of the stack that ContextService.get is building, but its last


def install():
    """Patch ContextService once per process (a no-op when done, or for another ansible_mitogen)."""
    import functools

    import ansible_mitogen.target
    import mitogen.core
    from ansible_mitogen.services import ContextService

    if getattr(ContextService.get, "pyfleet_hops", False):
        return
    connect, get = ContextService._connect, ContextService.get
    if hashlib.sha256(inspect.getsource(connect).encode()).hexdigest() != MIRRORED_CONNECT:
        return
    init_locks = {}  # context -> lock: one init_child per context
    locks_lock = threading.Lock()

    def _connect(self, key, spec, via=None):
        if not any(spec is hop for hop in getattr(_hops, "specs", ())):
            return connect(self, key, spec, via=via)
        # ContextService._connect without its init_child call (MIRRORED_CONNECT)
        method = getattr(self.router, spec["method"])
        context = method(via=via, unidirectional=True, **spec["kwargs"])
        if via and spec.get("enable_lru"):
            self._update_lru(context, spec, via)
        mitogen.core.listen(context, "disconnect", lambda: self._on_context_disconnect(context))
        self._send_module_forwards(context)
        self._key_by_context[context] = key
        self._refs_by_context[context] = 0
        return {"context": context, "via": via, "init_child_result": None, "msg": None}

    @functools.wraps(get)  # keeps mitogen.service's exposure and argument spec
    def get_with_hops(self, stack):
        _hops.specs = stack[:-1]
        try:
            result = get(self, stack)
        finally:
            _hops.specs = ()
        context = result.get("context")
        if context is not None and result.get("init_child_result") is None:
            # a hop until now, asked for as a task runner: set it up as _connect would have
            with locks_lock:
                lock = init_locks.setdefault(context, threading.Lock())
            with lock:
                if result["init_child_result"] is None:  # the response ContextService keeps: set once
                    result["init_child_result"] = context.call(
                        ansible_mitogen.target.init_child,
                        log_level=ansible_mitogen.services.LOG.getEffectiveLevel(),
                        candidate_temp_dirs=self._get_candidate_temp_dirs(),
                    )
        return result

    get_with_hops.pyfleet_hops = True
    ContextService._connect = _connect
    ContextService.get = get_with_hops
