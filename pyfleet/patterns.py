"""Host patterns with Ansible's own semantics: the one matcher pyfleet uses.

An app's ``hosts`` (and ``celery.hosts``) is an Ansible host pattern, so it must
select exactly the hosts ``ansible-playbook --limit`` would. This follows
``ansible.inventory.manager.InventoryManager`` (split_host_pattern,
_enumerate_matches, _match_list, _split_subscript), and
tests/unit/test_patterns.py checks it against Ansible's InventoryManager:

- terms split on ``,`` or else on ``:`` (not inside ``[...]``);
- plain terms are a union (``all`` when there is none), then ``&term`` intersects, then ``!term`` removes;
- a term matches group names (glob; ``~`` starts a regular expression); it
  matches host names too when no group matched or it has a wildcard or a dot;
- ``group[0]``, ``group[-1]``, ``group[1:3]`` pick hosts by position.

The result is in inventory order (the order of ``groups['all']``).
"""

import fnmatch
import re

from pyfleet.errors import PyfleetError

_SPLIT = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]+)?)\]$")


def all_hosts(groups):
    """Every inventory host, in inventory order (``all`` first, then any group member missing there)."""
    hosts = list(groups.get("all") or [])
    seen = set(hosts)
    for members in groups.values():
        for host in members or []:
            if host not in seen:
                seen.add(host)
                hosts.append(host)
    return hosts


def split(pattern):
    """The terms of a pattern, as Ansible's split_host_pattern cuts them."""
    text = str(pattern or "")
    parts = text.split(",") if "," in text else _SPLIT.findall(text)
    return [p.strip() for p in parts if p.strip()]


def match_hosts(pattern, groups):
    """The hosts ``pattern`` selects among ``groups`` (name -> hosts), in inventory order."""
    groups = {name: list(members or []) for name, members in (groups or {}).items()}
    everyone = all_hosts(groups)
    terms = split(pattern)
    if not terms:
        return []
    regular = [t for t in terms if t[0] not in "&!"] or ["all"]  # "!web" alone means all but web
    chosen = []
    for term in regular:
        chosen += [h for h in _term(term, groups, everyone) if h not in chosen]
    for term in (t for t in terms if t[0] == "&"):
        keep = set(_term(term[1:], groups, everyone))
        chosen = [h for h in chosen if h in keep]
    for term in (t for t in terms if t[0] == "!"):
        drop = set(_term(term[1:], groups, everyone))
        chosen = [h for h in chosen if h not in drop]
    picked = set(chosen)
    return [h for h in everyone if h in picked]


def _term(term, groups, everyone):
    """The hosts one term names, with a subscript applied."""
    term, subscript = _subscript(term)
    found = []
    matching_groups = _match_list(list(groups), term)
    for name in matching_groups:
        found += [h for h in groups[name] if h not in found]
    if not matching_groups or term[0] == "~" or any(c in term for c in ".?*["):
        found += [h for h in _match_list(everyone, term) if h not in found]
    if subscript is None:
        return found
    start, end = subscript
    if not end:  # web[2], and web[2:0] as Ansible reads it
        if not -len(found) <= start < len(found):
            raise PyfleetError(f"host pattern {term}[{start}]: no host at that position ({len(found)} match {term})")
        return [found[start]]
    return found[start:] if end == -1 else found[start : end + 1]


def _subscript(term):
    """(term, (start, end) or None): ``web[0]``, ``web[-1]``, ``web[1:3]``, ``web[2:]``."""
    if term.startswith("~"):
        return term, None
    m = _SUBSCRIPT.match(term)
    if not m:
        return term, None
    base, index, start, _separator, end = m.groups()
    if index is not None:
        return base, (int(index), None)
    # Ansible still reads the old [x-y] form as [x:y] (with a warning).
    return base, (int(start), int(end) if end else -1)


def _match_list(items, term):
    """Items a glob (or ``~regex``) term matches from their start, as Ansible's _match_list."""
    try:
        regex = re.compile(term[1:] if term.startswith("~") else fnmatch.translate(term))
    except re.error as exc:
        raise PyfleetError(f"host pattern {term!r}: not a valid regular expression ({exc})") from None
    return [item for item in items if regex.match(item)]
