"""The graph JSON of a ``.pt2`` (models/<name>.json): argument unions decoded to Python values,
nodes, and the module paths that name tensors the way the user knows them."""
import re

from .pt2_store import SCALAR_TYPES

class _Ref(object):
    """A reference to a tensor value of the graph, by its name in model.json."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "%" + self.name


class _Dtype(object):
    """A torch ScalarType argument (as_scalar_type)."""
    __slots__ = ("code",)

    def __init__(self, code):
        self.code = code

    @property
    def name(self):
        return SCALAR_TYPES.get(self.code)


class _Sym(object):
    """A symbolic int/float/bool argument: the value is only known at run time."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class _Opaque(object):
    """An argument kind no reader needs (device, layout, graph, custom object...)."""
    __slots__ = ("kind",)

    def __init__(self, kind):
        self.kind = kind


def _decode(arg):
    """One serialized Argument union -> a Python value (_Ref for tensors)."""
    if not isinstance(arg, dict) or len(arg) != 1:
        return _Opaque(str(arg)[:40])
    (kind, v), = arg.items()
    if kind == "as_none":
        return None
    if kind == "as_tensor":
        return _Ref(v["name"])
    if kind == "as_tensors":
        return [_Ref(t["name"]) for t in v]
    if kind == "as_optional_tensors":
        return [_Ref(t["as_tensor"]["name"]) if "as_tensor" in t else None for t in v]
    if kind in ("as_int", "as_float", "as_bool", "as_string", "as_ints", "as_floats", "as_bools",
                "as_strings"):
        return v
    if kind == "as_scalar_type":
        return _Dtype(v)
    if kind in ("as_sym_int", "as_sym_float", "as_sym_bool"):
        return _sym(v)
    if kind in ("as_sym_ints", "as_sym_floats", "as_sym_bools"):
        return [_sym(x) for x in v]
    return _Opaque(kind)


def _sym(v):
    (k, x), = v.items()
    if k == "as_name":
        return _Sym(x)
    return x


class _Node(object):
    __slots__ = ("name", "target", "args", "outputs", "meta")

    def __init__(self, raw):
        self.target = raw["target"]
        if self.target.startswith("torch.ops."):
            self.target = self.target[len("torch.ops."):]
        self.args = {}
        for i, a in enumerate(raw.get("inputs", [])):
            self.args[a.get("name") or "arg%d" % i] = _decode(a.get("arg"))
        self.outputs = []
        for o in raw.get("outputs", []):
            v = _decode(o)
            if isinstance(v, _Ref):
                self.outputs.append(v.name)
            elif isinstance(v, list):
                self.outputs.extend(r.name for r in v if isinstance(r, _Ref))
        self.meta = raw.get("metadata") or {}
        self.name = raw.get("name") or (self.outputs[0] if self.outputs else self.target)

    @property
    def output(self):
        return self.outputs[0] if self.outputs else None

    def refs(self):
        for v in self.args.values():
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, _Ref):
                    yield x.name


def _split_top(text, sep):
    """Split on ``sep`` outside brackets (module paths may hold ``[0]`` or ``['a,b']``)."""
    out, start, depth = [], 0, 0
    for i, c in enumerate(text):
        if c in "[(":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


def _clean_path(path):
    """``L['self'].features[3].conv`` / ``L__self__.features.3`` -> ``features.3.conv``."""
    path = re.sub(r"^(L\['self'\]|L__self__|self)\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\[['\"]([^'\"]*)['\"]\]", r".\1", path)
    path = re.sub(r"^getattr\(.*?,\s*['\"]([^'\"]*)['\"]\)", r"\1", path)
    return path.strip(".")


def _module_of(node):
    """(module path, module type) of the innermost module that called ``node``, or ('', '')."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return "", ""
    last = _split_top(stack, ";")[-1]
    parts = _split_top(last, ",")
    if len(parts) != 3:
        return "", ""
    return _clean_path(parts[1]), parts[2]


_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def _op_name(node):
    """The name a user knows: the module path for a torch.nn leaf module (``features.0.0``),
    else the calling module's path and the graph's node name (``features.3/add_1``)."""
    path, mtype = _module_of(node)
    leaf = (mtype.startswith("torch.nn.modules.") or mtype.startswith("torch.ao.nn.")) and \
        not mtype.endswith(_CONTAINERS)
    if path and leaf:
        return path
    return "%s/%s" % (path, node.name) if path else node.name
