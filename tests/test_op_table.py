"""The op table a newcomer reads (ops/__init__.py) and the verifier's rule list in the README
describe the code: every source kind has one shape rule and one lowering and is in the table,
every kind a frontend emits has a lowering, every luci rule the README names is registered."""
import os
import re

from onelib.pytorch_quant import ops, verify
from onelib.pytorch_quant.ops import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table_kinds():
    """Kinds in the first column of the table in ops/__init__.py's docstring."""
    doc = ops.__doc__
    body = doc.split("attrs\n", 1)[1].split("\n====", 1)[0]
    kinds = set()
    for line in body.splitlines():
        first = line[:23]
        if first.strip() and not first.startswith("="):
            kinds.update(k.strip() for k in first.split(",") if k.strip())
    return kinds


def test_every_registered_kind_has_shape_lowering_and_a_table_row():
    registry._load_all()
    assert set(registry.SHAPES) == set(registry.LOWERINGS)
    assert _table_kinds() == set(registry.LOWERINGS)
    assert registry.FLOAT_CAPABLE <= set(registry.LOWERINGS)
    assert set(registry.QPARAMS) <= set(registry.LOWERINGS)


def test_frontends_emit_only_registered_kinds():
    registry._load_all()
    emitted = set()
    folder = os.path.join(ROOT, "onelib", "pytorch_quant", "frontend")
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".py")):
        with open(os.path.join(folder, name)) as f:
            text = f.read()
        emitted.update(re.findall(r'(?:emit|Op)\("([a-z_0-9]+)"', text))
    assert emitted and emitted <= set(registry.LOWERINGS), emitted - set(registry.LOWERINGS)


def test_readme_lists_every_verifier_rule():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    listed = re.search(r"one function per rule: (.*?)\) names", readme, re.S).group(1)
    assert set(re.findall(r"`([a-z0-9_]+)`", listed)) == set(verify.RULES)
