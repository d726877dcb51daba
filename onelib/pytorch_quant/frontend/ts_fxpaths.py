"""Full module paths for the nodes of an FX-quantized model traced to TorchScript.

FX's generated forward calls every leaf module from the top (``getattr(self.features, "1")...``),
so an inlined node's ``getModuleHierarchy()`` holds the last component only (``2(SiLU)``). Two
facts of the file give the rest back:

1. the top-level (not inlined) forward reaches each called module through a chain of
   ``prim::GetAttr`` from ``self``: walking it in order gives the full path of every call;
2. each inlined node keeps the Python frame of FX's generated code that made it
   (``<eval_with_key>.K(LINE): forward``): one line per FX node, in call order. Nodes are grouped
   by that frame; each group that came from a module call is matched, in order, to the next call
   whose path ends with the group's first hierarchy component (calls that left no node, such as
   an eval Dropout, are skipped).

Functional ops (``x * s``, a residual ``+``, ``flatten``: top-level FX nodes) have no module in the
file. They are named ``<common prefix of the module calls before and after>/<op>`` (e.g.
``features.1.0.block/mul``): an approximation — the prefix is where the op sits in the call order,
the op's true owner may be a module deeper (``features.1.0.block.1``). When either neighbour is
missing or they share no prefix, the walker's usual name stays.

Eager-traced models (no ``<eval_with_key>`` frame) and files without debug info get ``{}``: their
names stay what ``getModuleHierarchy`` gives.
"""
import re

_FRAME = re.compile(r"(<eval_with_key>\.\d+)\((\d+)\): forward")
_STRIP = re.compile(r"\([^()]*\)")


def _frame(node):
    try:
        m = _FRAME.search(node.sourceRange() or "")
    except Exception:
        return None
    return m.groups() if m else None


def _hierarchy(node):
    try:
        return _STRIP.sub("", node.getModuleHierarchy() or "")
    except Exception:
        return ""


def _calls(module):
    """[full path] of every ``prim::CallMethod`` on a submodule in the top-level forward, in order."""
    g = module.forward.graph
    path_of = {next(iter(g.inputs())).unique(): ""}
    calls = []
    for n in g.nodes():
        if n.kind() == "prim::GetAttr":
            parent = path_of.get(n.input().unique())
            if parent is not None:
                path_of[n.output().unique()] = (parent + "." if parent else "") + n.s("name")
        elif n.kind() == "prim::CallMethod":
            p = path_of.get(next(iter(n.inputs())).unique())
            if p:
                calls.append(p)
    return calls


def _common(a, b):
    out = []
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        out.append(x)
    return ".".join(out)


def fx_module_paths(module, graph):
    """{output Value.unique() of a node of ``graph`` (the inlined forward of ``module``, frozen or
    not): its full module path, or '<prefix>/<op>' for a functional op}; {} when ``graph`` was not
    made by FX."""
    nodes = [n for n in graph.nodes() if not n.kind().startswith("prim::") and len(list(n.outputs()))]
    frames = [_frame(n) for n in nodes]
    if not any(frames):
        return {}
    try:
        calls = _calls(module)
    except Exception:
        return {}
    group_path, i = {}, 0
    found = []     # per node: full path, or None for a functional op
    for n, key in zip(nodes, frames):
        h = _hierarchy(n)
        full = None
        if h and key is not None:
            first, _, rest = h.partition(".")
            if key not in group_path:
                j = i
                while j < len(calls) and calls[j].rsplit(".", 1)[-1] != first:
                    j += 1
                group_path[key] = calls[j] if j < len(calls) else None
                if j < len(calls):
                    i = j + 1
            base = group_path[key]
            full = (base + ("." + rest if rest else "")) if base else h
        found.append(full)
    paths = {}
    for k, (n, full) in enumerate(zip(nodes, found)):
        out = next(iter(n.outputs())).unique()
        if full:
            paths[out] = full
            continue
        before = next((p for p in reversed(found[:k]) if p), None)
        after = next((p for p in found[k + 1:] if p), None)
        prefix = _common(before, after) if before and after else ""
        if prefix:
            paths[out] = "%s/%s" % (prefix, n.kind().split("::")[-1])
    return paths
