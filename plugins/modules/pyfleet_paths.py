#!/usr/bin/python
"""pyfleet_paths: a host's directories, links, small files and removals in one module run."""

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: pyfleet_paths
short_description: Directories, symlinks, small files and removals on a host, in one module run
version_added: "0.4.0"
author: pyfleet
description:
  - Does what a loop of C(ansible.builtin.file) and C(ansible.builtin.copy) (with
    C(content)) tasks would, in one module run. Each loop item costs a module run
    per host (about 40 ms of the controller's CPU with Mitogen), so a role that
    sets up many paths per host does it in one.
  - Each path is checked and changed in list order (a directory before the files
    in it); owner, group and mode are set when they differ.
  - Supports check mode and diff mode (one diff per changed path).
options:
  paths:
    description: The paths and what each should be.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description:
          - C(directory) (created with its parents), C(file) (with C(content);
            a link there is followed, the file it names is written),
            C(link) (to C(src); replaces a file or link there) or C(absent)
            (a directory is removed with what it holds).
        type: str
        choices: [directory, file, link, absent]
        required: true
      content:
        description: The file's text, for C(state=file).
        type: str
      src:
        description: The link's target, for C(state=link).
        type: str
      owner:
        description: Owner, for C(directory) and C(file).
        type: str
      group:
        description: Group, for C(directory) and C(file).
        type: str
      mode:
        description: Octal mode as a string (C("0755")), for C(directory) and C(file).
        type: str
"""

EXAMPLES = r"""
- name: App directories and a settings file
  pyfleet_paths:
    paths:
      - {path: /srv/hello, state: directory, owner: hello, group: hello, mode: "0750"}
      - {path: /etc/default/locale, state: file, content: "LANG=C.UTF-8\n", mode: "0644"}
      - {path: /etc/localtime, state: link, src: /usr/share/zoneinfo/UTC}
      - {path: /etc/apt/apt.conf.d/01proxy, state: absent}
"""

RETURN = r"""
changed_paths:
  description: The paths that changed (or, in check mode, would).
  type: list
  elements: str
  returned: always
"""

ENTRY = {
    "path": {"type": "path", "required": True},
    "state": {"type": "str", "required": True, "choices": ["directory", "file", "link", "absent"]},
    "content": {"type": "str"},
    "src": {"type": "str"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "mode": {"type": "str"},
}


def kind(path):
    """What is at ``path`` now: link, directory, file or absent (a link is a link, whatever it points to)."""
    if os.path.islink(path):
        return "link"
    if os.path.isdir(path):
        return "directory"
    return "file" if os.path.exists(path) else "absent"


def read(path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def write(module, path, content):
    """Write ``content`` to ``path`` through a temporary file in its directory (never half written)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".pyfleet-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    module.atomic_move(tmp, path)


def attributes(module, path, entry, changed, diff):
    """Owner, group and mode of ``path`` where the entry names them; True when any differed (or ``changed`` was)."""
    changed = module.set_owner_if_different(path, entry["owner"], changed, diff)
    changed = module.set_group_if_different(path, entry["group"], changed, diff)
    return module.set_mode_if_different(path, entry["mode"], changed, diff)


def converge(module, entry):
    """Make one path what ``entry`` says; return (changed, diff)."""
    path, state = entry["path"], entry["state"]
    before = kind(path)
    diff = {"before_header": path, "after_header": path, "before": {"state": before}, "after": {"state": state}}
    if state == "absent":
        if before == "absent":
            return False, None
        if not module.check_mode:
            if before == "directory":
                shutil.rmtree(path)
            else:
                os.unlink(path)
        return True, diff
    if before == "directory" and state != "directory":
        module.fail_json(msg=f"{path} is a directory; pyfleet_paths makes it a {state} only after it is removed")
    if state == "directory":
        if before not in ("absent", "directory"):
            module.fail_json(msg=f"{path} exists and is a {before}, not a directory; remove it first")
        if before == "absent":
            if module.check_mode:
                return True, diff
            os.makedirs(path)
        return attributes(module, path, entry, before == "absent", diff), diff
    if state == "link":
        if entry["src"] is None:
            module.fail_json(msg=f"{path}: state link needs src")
        if before == "link" and os.readlink(path) == entry["src"]:
            return False, None
        diff["before"]["src"] = os.readlink(path) if before == "link" else None
        diff["after"]["src"] = entry["src"]
        if not module.check_mode:
            if before != "absent":
                os.unlink(path)
            os.symlink(entry["src"], path)
        return True, diff
    # state == "file". A link is followed, as ansible.builtin.copy reads it: Debian 13
    # links /etc/default/locale to /etc/locale.conf, and the file it names is written.
    if entry["content"] is None:
        module.fail_json(msg=f"{path}: state file needs content")
    if before == "link":
        path = os.path.realpath(path)
        before = kind(path)
        if before == "directory":
            module.fail_json(
                msg=f"{entry['path']} links to the directory {path}; a file goes there only after it is removed"
            )
    old = read(path) if before == "file" else None
    if old == entry["content"]:
        return attributes(module, path, entry, False, diff), diff
    text = {"before_header": path, "after_header": path, "before": old or "", "after": entry["content"]}
    if not module.check_mode:
        write(module, path, entry["content"])
        attributes(module, path, entry, True, None)
    return True, text


def main():
    module = AnsibleModule(
        argument_spec={"paths": {"type": "list", "elements": "dict", "required": True, "options": ENTRY}},
        supports_check_mode=True,
    )
    changed_paths, diffs = [], []
    for entry in module.params["paths"]:
        changed, diff = converge(module, entry)
        if changed:
            changed_paths.append(entry["path"])
            if diff:
                diffs.append(diff)
    result = {"changed": bool(changed_paths), "changed_paths": changed_paths}
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
