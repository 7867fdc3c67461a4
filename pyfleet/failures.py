"""Why a task failed, as one line: the cause the callbacks record and ``fab`` ends a failed run with.

Ansible keeps the reason of a failure in different places of a task's result:
``stderr`` (command and shell, a template's ``validate``, a handler that runs
``nginx -t``), ``msg`` (most modules, ``assert``, ``fail``), ``module_stderr``
or ``module_stdout`` (a module that crashed), a loop's ``results`` (the first
failed item says why), or an SSH message (an unreachable host). ``record``
turns a failed result into what plugins/callback/pyfleet_failures.py and
pyfleet_progress.py store; ``message`` picks the one line a failed run ends with.
No Ansible imports: the callbacks, the filters and the unit tests share this.
"""

import re

MAX_CAUSE = 300
HIDDEN = "its output is hidden (no_log: true)"
FIX = "fix it and run again"

# Module messages that only say that something failed; the output says what.
GENERIC = (
    "non-zero return code",
    "module failure",
    "module result deserialization failed",
    "failed to validate",
    "one or more items failed",
    "all items completed",
)
# Ansible's own prefixes, which the line pyfleet prints already says.
PREFIXES = re.compile(
    r'^(?:Task failed: |Failed to connect to the host via ssh: |Data could not be sent to remote host "[^"]*"\. '
    r"Make sure this host can be reached over ssh: )+"
)
# Warnings come before the error in many tools' output (nginx -t, apt): skip them when something else follows.
WARNING = re.compile(r"^(?:\S+:\s+)?(?:\[warn(?:ing)?\]|warn(?:ing)?:|W:)", re.IGNORECASE)
HOST_KEY = re.compile(
    r"host key verification failed|remote host identification has changed|mismatching host key"
    r"|unknown host key|no \S+ host key is known",
    re.IGNORECASE,
)
# Mitogen's unreachable message starts with this line; ssh's own lines follow it.
MITOGEN_EOF = re.compile(r"^EOF on stream; last \d+ lines received:?$")
# ssh names the known_hosts file it read ("Add correct host key in /x/known_hosts to get rid of ...").
KNOWN_HOSTS_FILE = re.compile(r"key in (\S+?)(?::\d+)?(?:\s|$)")


def _lines(text):
    if isinstance(text, (list, tuple)):
        text = "\n".join(str(t) for t in text)
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def first_line(text):
    """The line of a tool's output that says why: the first one that is not a warning; a Python traceback's last."""
    lines = _lines(text)
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return lines[-1]  # the exception, e.g. "RuntimeError: release directory missing"
    useful = [line for line in lines if not WARNING.match(line)]
    return (useful or lines or [""])[0]


def one_line(text, limit=MAX_CAUSE):
    """``text`` on one line (whitespace collapsed), at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strip_prefixes(text):
    return PREFIXES.sub("", text)


def is_generic(msg):
    """True for a message that only says that the task failed, not why."""
    return str(msg).strip().lower().startswith(GENERIC)


def _hidden(result):
    # Ansible censors a no_log result before the callbacks see it; _ansible_no_log is the older marker.
    return bool(result.get("censored") or result.get("_ansible_no_log"))


def details(result):
    """What a failed result says, one line each: ``{msg, stderr, stdout, rc, item, hidden}``.

    A loop's result is read from its first failed item (``item``: its label).
    A no_log result stays hidden: nothing of it is read but that it failed.
    """
    out = {"msg": "", "stderr": "", "stdout": "", "rc": None, "item": None, "hidden": False}
    if _hidden(result):
        return dict(out, hidden=True)
    items = result.get("results")
    if isinstance(items, list):
        failed = [r for r in items if isinstance(r, dict) and (r.get("failed") or r.get("unreachable"))]
        if failed:
            result = failed[0]
            if _hidden(result):
                return dict(out, hidden=True)
            label = result.get("_ansible_item_label", result.get("item"))
            out["item"] = one_line(label, 80) if label is not None else None
    msg = first_line(_strip_prefixes(str(result.get("msg") or "").strip()))
    if msg == "Assertion failed" and result.get("assertion"):
        msg = f"assertion failed: {result['assertion']}"
    out["msg"] = one_line(msg)
    out["stderr"] = one_line(first_line(result.get("stderr") or result.get("module_stderr")))
    out["stdout"] = one_line(first_line(result.get("stdout") or result.get("module_stdout")))
    out["rc"] = result.get("rc")
    return out


def cause(result):
    """The one line that says why a task failed (at most MAX_CAUSE characters).

    The first useful line of stderr, else the module's message unless it only
    says that something failed ("non-zero return code"), else the first line of
    stdout; a loop's first failed item, named; never a no_log task's output.
    """
    return cause_of(details(result))


def cause_of(d):
    """``cause`` from ``details``."""
    if d["hidden"]:
        return HIDDEN
    msg = d["msg"]
    why = d["stderr"] or (msg if msg and not is_generic(msg) else "") or d["stdout"]
    if not why:
        no_output = f"exit code {d['rc']}, no output" if d["rc"] is not None else "no output"
        why = f"{msg} ({no_output})" if msg else f"failed ({no_output})"
    if d["item"] is not None:
        why = f"item {d['item']}: {why}"
    return one_line(why)


def record(host, task, result, play="", path=""):
    """A failed task as the callbacks store it: where, what its result says (``details``), its cause, line and fix."""
    d = details(result)
    why = cause_of(d)
    # A role's own failure line (decisions.failure_line) already starts with the host.
    if why.startswith(f"{host}: "):
        why = why[len(host) + 2 :]
    line = f"{host}: task '{task}' failed: {why}"
    where = {"host": host, "task": task, "play": play, "path": path}
    # A role's own line that already says how to fix it ("...; fix: ...") needs no generic advice after it.
    fix = "" if re.search(r"(?:^|; )fix: ", why) else FIX
    return {**where, **d, "unreachable": False, "cause": why, "line": line, "fix": fix}


def unreachable_record(host, task, msg, address=None, port=None, play=""):
    """An unreachable host as the callbacks store it; a host key that ssh refused gets its own line and fix.

    ``address``/``port``: how Ansible reaches the host (ansible_host, ansible_port).
    """
    text = _strip_prefixes(str(msg or "").strip())
    lines = [line for line in _lines(text) if not MITOGEN_EOF.match(line)]
    first = one_line(first_line(lines)) or "no message"
    d = {"msg": first, "stderr": "", "stdout": "", "rc": None, "item": None, "hidden": False}
    rec = {"host": host, "task": task, "play": play, "path": "", **d, "unreachable": True}
    key_lines = [line.strip(" @") for line in lines if HOST_KEY.search(line)]
    if not key_lines:
        fix = "check that the host is up and that SSH reaches it, then run again"
        return dict(rec, cause=first, line=f"{host}: unreachable: {first}", fix=fix)
    address = str(address or host)
    port = None if str(port or 22) == "22" else str(port)
    known = KNOWN_HOSTS_FILE.search(text)  # ssh names the file it read; the default otherwise
    known_file = known.group(1) if known else "~/.ssh/known_hosts"
    keyscan = f"ssh-keyscan -p {port} {address}" if port else f"ssh-keyscan {address}"
    keygen = f"ssh-keygen -f {known_file} -R" if known else "ssh-keygen -R"
    entry = f"'[{address}]:{port}'" if port else address  # how known_hosts names a host on another port
    why = f"its SSH host key is unknown or has changed ({one_line(key_lines[0], 120)})"
    fix = (
        f"check the server's key, then add it with {keyscan} >> {known_file} "
        f"(or remove the old one with {keygen} {entry})"
    )
    return dict(rec, cause=why, line=f"{host}: {why}", fix=fix)


def address_of(play, host):
    """(ansible_host, ansible_port) of an Ansible ``host`` in ``play``, for the ssh-keyscan hint; group vars count."""
    try:
        hostvars = play.get_variable_manager().get_vars(play=play, host=host, include_hostvars=False)
    except Exception:  # only a hint: the host's own vars will do
        hostvars = host.vars
    address, port = hostvars.get("ansible_host"), hostvars.get("ansible_port")
    # A template is no address to print: unreachable_record falls back to the host's name and port 22.
    return (None if "{{" in str(address) else address), (None if "{{" in str(port) else port)


def message(failures, failed_hosts=None):
    """The last line of a failed run, from the callbacks' records; None when there is none.

    A host's last failure is the one that stopped it (a rescue handled the
    earlier ones); ``failed_hosts`` (from the recap, when the run got that far)
    leaves out the hosts that recovered. The line is the first such failure's,
    with its fix, and names the other hosts that failed.
    """
    last = {}
    for rec in failures:
        last.pop(rec["host"], None)  # re-inserted: ordered by each host's last failure
        last[rec["host"]] = rec
    if failed_hosts is not None:
        last = {h: rec for h, rec in last.items() if h in failed_hosts}
    if not last:
        return None
    first = next(iter(last.values()))
    text = f"{first['line']}; {first['fix']}" if first["fix"] else first["line"]
    others = sorted(set(last if failed_hosts is None else failed_hosts) - {first["host"]})
    if others:
        text += f"; also failed: {', '.join(others)}"
    return text
