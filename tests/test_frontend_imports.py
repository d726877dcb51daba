"""Frontends produce IR and nothing else: no module under frontend/ imports from ops/ or passes/
(at module level or inside a function); what they need of those, api.py hands them."""
import ast
import os

FRONTEND = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "onelib", "pytorch_quant", "frontend")


def _imports(path):
    """Every module a file imports, as a dotted name relative to onelib.pytorch_quant."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module
            elif node.level == 1:   # a sibling in frontend/
                yield "frontend." + (node.module or "")
            elif node.module:
                yield node.module
            else:                   # from .. import ops
                for alias in node.names:
                    yield alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


def test_frontends_import_nothing_from_ops_or_passes():
    names = sorted(n for n in os.listdir(FRONTEND) if n.endswith(".py"))
    assert "pt2.py" in names and "torchscript.py" in names
    bad = []
    for name in names:
        for mod in _imports(os.path.join(FRONTEND, name)):
            parts = mod.replace("onelib.pytorch_quant.", "").split(".")
            if parts[0] in ("ops", "passes"):
                bad.append("%s imports %s" % (name, mod))
    assert not bad, bad
