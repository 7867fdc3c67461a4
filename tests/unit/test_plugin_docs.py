"""Every plugin's DOCUMENTATION/EXAMPLES/RETURN is YAML, so `ansible-doc` can show it."""

import ast
from pathlib import Path

import pytest
import yaml

# An action plugin is documented by its module of the same name (as Ansible's own are).
PLUGINS = sorted(p for p in Path("plugins").rglob("*.py") if "strategy" not in p.parts and "action" not in p.parts)


def doc_blocks(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in (
            "DOCUMENTATION",
            "EXAMPLES",
            "RETURN",
        ):
            yield node.targets[0].id, node.value.value


@pytest.mark.parametrize("path", PLUGINS, ids=str)
def test_plugin_documentation_is_yaml(path):
    blocks = dict(doc_blocks(path))
    assert "DOCUMENTATION" in blocks, f"{path} has no DOCUMENTATION"
    for text in blocks.values():
        yaml.safe_load(text)  # raises with the line that breaks ansible-doc


@pytest.mark.parametrize("path", sorted(Path("plugins/action").glob("*.py")), ids=str)
def test_every_action_plugin_has_a_documented_module_of_its_name(path):
    assert "DOCUMENTATION" in dict(doc_blocks(Path("plugins/modules") / path.name))
