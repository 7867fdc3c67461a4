"""Type checks shared by the inventory validators (apps, catalogue, flower, workers)."""

import difflib

from pyfleet.errors import PyfleetError


def is_int(value):
    """True for real integers (YAML's true/false are bools, not counts)."""
    return isinstance(value, int) and not isinstance(value, bool)


def kind_of(value):
    """A short description of a value's YAML type, for messages (never the value)."""
    # isinstance, not type(): Ansible hands over subclasses of dict, str, int...
    for types, name in (
        (bool, "a boolean"),
        ((int, float), "a number"),
        (str, "a string"),
        (dict, "a mapping"),
        ((list, tuple), "a list"),
        (type(None), "nothing"),
    ):
        if isinstance(value, types):
            return name
    return type(value).__name__


def unknown_key(mapping, allowed):
    """The first key of ``mapping`` not in ``allowed`` and its fix, as ``(key, fix)``, or None.

    The fix suggests the closest allowed key (typos) and lists them all.
    """
    unknown = sorted(set(map(str, mapping)) - set(allowed))
    if not unknown:
        return None
    close = difflib.get_close_matches(unknown[0], allowed, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return unknown[0], f"{hint}allowed keys: {', '.join(sorted(allowed))}"


def unknown_keys(where, mapping, allowed):
    """Reject keys not in ``allowed``: PyfleetError ``<where>.<key>: unknown key; <fix>``."""
    found = unknown_key(mapping, allowed)
    if found:
        key, fix = found
        raise PyfleetError(f"{where}.{key}: unknown key; {fix}")


def boolean(where, key, value):
    """A YAML boolean."""
    if not isinstance(value, bool):
        path = f"{where}.{key}" if key else where
        raise PyfleetError(f"{path}: {value!r} is not true or false; write true or false")
    return value
