"""Role variables the inventory sets, checked against the roles' argument specs before any host.

Ansible checks a role's variables (roles/*/meta/argument_specs.yml) when the role
starts on a host: a wrong value for the load balancer role, say, stopped a run
after every earlier play had changed the hosts. The fleet plan runs this check
first, for every host and every role variable set in the inventory (host and
group vars, extra vars), with Ansible's own validator: the same conversions
and refusals, one line naming the host, the variable and what it must be.

Values that are still templates (read from ``ansible-inventory``, before a play
renders them) or vault-encrypted are left for the play's plan to check: there
they arrive rendered and decrypted.
"""

import functools
import json
from collections.abc import Mapping

import yaml

from pyfleet import addresses
from pyfleet.errors import PyfleetError
from pyfleet.shell import ROOT

ROLES = ROOT / "roles"
# What a value must be, in words, by its spec type.
_KINDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "dict": "a mapping",
    "path": "a path",
    "raw": "a value",
}


@functools.cache
def role_options(roles_dir=ROLES):
    """{variable: (role, option spec)} over every entry point of every role's argument specs."""
    options = {}
    for specs in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        role = specs.parent.parent.name
        entry_points = (yaml.safe_load(specs.read_text()) or {}).get("argument_specs") or {}
        for entry_point in entry_points.values():
            for name, spec in ((entry_point or {}).get("options") or {}).items():
                options.setdefault(name, (role, spec))
    return options


def _unrendered(value):
    """A template or a vault-encrypted value as ansible-inventory prints them: the play checks it."""
    if isinstance(value, dict) and "__ansible_vault" in value:
        return True
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return "{{" in text or "{%" in text


def expected(spec):
    """What a value of ``spec`` must be, in words: 'an integer', 'a list of strings', 'one of a, b'."""
    if spec.get("choices") and len(spec["choices"]) == 1:
        return str(spec["choices"][0])
    if spec.get("choices"):
        return "one of " + ", ".join(str(choice) for choice in spec["choices"])
    kind = spec.get("type", "str")
    words = _KINDS.get(kind, f"of type {kind}")
    if kind == "list" and spec.get("elements"):
        words += " of " + _KINDS.get(spec["elements"], spec["elements"]).split(" ", 1)[-1] + "s"
    return words


def problem(name, spec, value):
    """Ansible's validator's first objection to ``value`` for option ``spec``, or None."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    # Only what the inventory set is checked: whether the role needs a value is the role's own check.
    spec = {key: setting for key, setting in spec.items() if key != "required"}
    result = ArgumentSpecValidator({name: spec}).validate({name: value}, validate_role_argument_spec=True)
    return result.error_messages[0] if result.error_messages else None


def check(hostvars, hosts, roles_dir=ROLES):
    """PyfleetError (one line) at the first role variable of a host that its role's spec refuses."""
    options = role_options(roles_dir)
    for host in hosts:
        variables = addresses.host_vars(hostvars, host)
        for name in sorted(set(variables) & set(options)):
            # Plain data: the validator deep-copies what it checks, and a copy of one of Ansible's
            # lazy containers copies every variable it can reach (9 s for the lab's plan).
            value = json.loads(json.dumps(variables[name], default=str))
            if value is None or _unrendered(value):
                continue
            role, spec = options[name]
            objection = problem(name, spec, value)
            if objection is None:
                continue
            where = f"roles/{role}/meta/argument_specs.yml"
            if spec.get("options"):  # a structure: the validator names the part that is wrong
                raise PyfleetError(f"{name} on {host}: {objection}; fix it as {where} describes")
            shown = "the value" if spec.get("no_log") else _short(value)
            raise PyfleetError(
                f"{name} on {host}: {shown} is not {expected(spec)}; set {name} to {expected(spec)} ({where})"
            )


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def checked_by_plan(action, args, plan, roles_dir=ROLES):
    """Whether a task is Ansible's own argument check at a pyfleet role's start, which the plan repeats.

    Ansible puts that task first in every role with an argument spec, and runs it on
    every host of every play, each in a worker process of its own (13 per no-op
    ``site.yml``, 0.15 to 0.6 s each on the lab). ``action`` and ``args``: the task's.
    ``plan``: the host's ``pyfleet_plan`` fact, a mapping once the plan play checked
    the inventory (then its values passed ``check``), else None. The rest of what
    the task checks (role defaults, play variables) is pyfleet's own, and the
    molecule scenarios run the roles with Ansible's check.
    """
    context = args.get("validate_args_context") or {}
    return (
        action in ("ansible.builtin.validate_argument_spec", "validate_argument_spec")
        and context.get("type") == "role"
        and str(context.get("path", "")).startswith(str(roles_dir) + "/")
        and isinstance(plan, Mapping)
        and "error" not in plan
    )
