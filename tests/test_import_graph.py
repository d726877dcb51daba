"""The import graph of onelib/, read with ``ast`` (module-level and function-level imports alike):
no cycle anywhere, and the frontends import nothing from ops/ or passes/ (issue 8)."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "onelib"


def _modules():
    """{dotted module name: file path} for every .py under onelib/."""
    mods = {}
    for d, _, files in os.walk(os.path.join(ROOT, PKG)):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), ROOT)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                mods[".".join(rel)] = os.path.join(d, f)
    return mods


def _targets(name, path, node, mods):
    """The onelib modules an import statement in module ``name`` loads."""
    is_pkg = path.endswith("__init__.py")
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module
    # ``from pkg import sub`` loads pkg.sub when sub is a module
    return [mod] + [mod + "." + a.name for a in node.names if mod + "." + a.name in mods]


def import_graph():
    """{module: set of onelib modules it imports}, with the packages each import runs
    (``a.b.c`` runs ``a`` and ``a.b``) except the importer's own enclosing packages."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        edges = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(name, path, node, mods):
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    p = ".".join(parts[:i])
                    if p in mods and p != name and not name.startswith(p + "."):
                        edges.add(p)
        graph[name] = edges
    return graph


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n, stack)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [])
            if found:
                return found
    return None


def test_the_graph_is_read():
    g = import_graph()
    assert "onelib.pytorch_quant.ops.registry" in g["onelib.pytorch_quant.ops.lower"]
    assert "onelib.pytorch_quant.ops.conv" in g["onelib.pytorch_quant.ops.registry"]
    assert "onelib.pytorch_quant.circle.vocab" in g["onelib.pytorch_quant.circle.writer"]


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cyc = _cycle(import_graph())
    assert cyc is None, "import cycle: " + " -> ".join(cyc)


def test_op_modules_import_neither_registry_nor_lower():
    g = import_graph()
    op_modules = [m for m in g if m.startswith("onelib.pytorch_quant.ops.")
                  and m.rsplit(".", 1)[1] not in ("registry", "lower", "table")]
    for m in op_modules:
        bad = g[m] & {"onelib.pytorch_quant.ops.registry", "onelib.pytorch_quant.ops.lower"}
        assert not bad, "%s imports %s" % (m, sorted(bad))


def test_frontends_import_nothing_from_ops_or_passes():
    g = import_graph()
    bad = dict((m, sorted(t for t in g[m] if t.startswith(("onelib.pytorch_quant.ops", "onelib.pytorch_quant.passes"))))
               for m in g if m.startswith("onelib.pytorch_quant.frontend"))
    bad = dict((m, t) for m, t in bad.items() if t)
    assert not bad, bad
