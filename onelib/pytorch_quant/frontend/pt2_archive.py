"""Validate a ``.pt2``'s JSON against the part of torch.export's schema the reader uses, before
the reader uses it.

``validate_model`` checks ``models/<name>.json``: the types of every field the walker reads, the
serialized ``Argument`` unions of every node, the tensor metadata (dtype codes, ranks, static
sizes that are positive and small enough, strides), and the graph itself: every value is defined
once (a graph input or one node's output), every node reads only values defined before it (so the
graph is acyclic and an identity op cannot alias its own output), the outputs exist.
``validate_config`` checks ``data/*/<name>_*_config.json``. Each check raises a ConversionError
naming the member and the key or node. Nothing here recurses on the input's depth: the schema's
levels are walked by fixed code, and values the schema does not define are never descended into.
"""
from ..errors import ConversionError

# torch/_export/serde/schema.py ScalarType codes the reader maps to numpy
SCALAR_TYPE_CODES = (1, 2, 3, 4, 5, 6, 7, 8, 12, 13)
MAX_RANK = 8
MAX_DIM = (1 << 31) - 1            # circle shapes are int32
MAX_NUMEL = 1 << 31                # no tensor of a model we convert is near this
MAX_NODES = 1000000

_SCALAR_KINDS = {"as_int": "int", "as_float": "float", "as_bool": "bool", "as_string": "str"}
_LIST_KINDS = {"as_ints": "int", "as_floats": "float", "as_bools": "bool", "as_strings": "str"}


def _fail(where, what):
    raise ConversionError("%s: %s" % (where, what))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is(v, kind):
    if kind == "int":
        return _is_int(v)
    if kind == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "bool":
        return isinstance(v, bool)
    return isinstance(v, str)


def _dict(v, where, what):
    if not isinstance(v, dict):
        _fail(where, "%s is %s, not an object" % (what, _kind(v)))
    return v


def _list(v, where, what):
    if not isinstance(v, list):
        _fail(where, "%s is %s, not a list" % (what, _kind(v)))
    return v


def _str(v, where, what):
    if not isinstance(v, str):
        _fail(where, "%s is %s, not a string" % (what, _kind(v)))
    return v


def _kind(v):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _union(v, where, what):
    """A serialized union: an object with exactly one key."""
    _dict(v, where, what)
    if len(v) != 1:
        _fail(where, "%s has %d keys, not one (a union)" % (what, len(v)))
    (k, x), = v.items()
    return k, x


def _tensor_name(v, where, what):
    _dict(v, where, what)
    return _str(v.get("name"), where, what + ".name")


def check_argument(arg, where, what):
    """One Argument union; returns the tensor names it reads."""
    kind, v = _union(arg, where, what)
    what = "%s.%s" % (what, kind)
    if kind == "as_tensor":
        return [_tensor_name(v, where, what)]
    if kind == "as_tensors":
        return [_tensor_name(t, where, "%s[%d]" % (what, i)) for i, t in enumerate(_list(v, where, what))]
    if kind == "as_optional_tensors":
        names = []
        for i, t in enumerate(_list(v, where, what)):
            k, x = _union(t, where, "%s[%d]" % (what, i))
            if k == "as_tensor":
                names.append(_tensor_name(x, where, "%s[%d].as_tensor" % (what, i)))
        return names
    if kind in _SCALAR_KINDS:
        if not _is(v, _SCALAR_KINDS[kind]):
            _fail(where, "%s is %s, not %s" % (what, _kind(v), _SCALAR_KINDS[kind]))
        return []
    if kind in _LIST_KINDS:
        for i, x in enumerate(_list(v, where, what)):
            if not _is(x, _LIST_KINDS[kind]):
                _fail(where, "%s[%d] is %s, not %s" % (what, i, _kind(x), _LIST_KINDS[kind]))
        return []
    if kind == "as_scalar_type":
        if not _is_int(v):
            _fail(where, "%s is %s, not a dtype code" % (what, _kind(v)))
        return []
    if kind in ("as_sym_int", "as_sym_float", "as_sym_bool"):
        _check_sym(v, where, what)
        return []
    if kind in ("as_sym_ints", "as_sym_floats", "as_sym_bools"):
        for i, x in enumerate(_list(v, where, what)):
            _check_sym(x, where, "%s[%d]" % (what, i))
        return []
    return []    # device, layout, graph, custom object...: read by no reader, refused where used


def _check_sym(v, where, what):
    k, x = _union(v, where, what)
    if k == "as_name":
        _str(x, where, what + ".as_name")
    elif isinstance(x, (dict, list)):
        _fail(where, "%s.%s is %s, not a number" % (what, k, _kind(x)))


def check_tensor_meta(meta, where, what):
    """dtype, sizes, strides and storage_offset of a TensorMeta; returns the static sizes (None
    for a symbolic dimension)."""
    _dict(meta, where, what)
    code = meta.get("dtype")
    if not _is_int(code) or code not in SCALAR_TYPE_CODES:
        _fail(where, "%s.dtype is %r, not a dtype code this importer reads (%s)"
              % (what, code, ", ".join(str(c) for c in SCALAR_TYPE_CODES)))
    sizes = _dims(meta.get("sizes", []), where, what + ".sizes", positive=True)
    if "strides" in meta:
        strides = _dims(meta["strides"], where, what + ".strides", positive=False)
        if len(strides) != len(sizes):
            _fail(where, "%s has %d sizes but %d strides" % (what, len(sizes), len(strides)))
    if "storage_offset" in meta:
        k, x = _union(meta["storage_offset"], where, what + ".storage_offset")
        if k == "as_int" and (not _is_int(x) or x < 0):
            _fail(where, "%s.storage_offset is %r, not a non-negative integer" % (what, x))
    numel = 1
    for d in sizes:
        if d is not None:
            numel *= d
            if numel > MAX_NUMEL:
                _fail(where, "%s has %s elements, more than %d" % (what, _product(sizes), MAX_NUMEL))
    return sizes


def _product(sizes):
    n = 1
    for d in sizes:
        n *= d if d is not None else 1
    return n


def _dims(v, where, what, positive):
    out = []
    for i, d in enumerate(_list(v, where, what)):
        k, x = _union(d, where, "%s[%d]" % (what, i))
        if k == "as_int":
            if not _is_int(x):
                _fail(where, "%s[%d] is %s, not an integer" % (what, i, _kind(x)))
            if positive and not 0 < x <= MAX_DIM:
                _fail(where, "%s[%d] is %d, not a dimension in 1..%d" % (what, i, x, MAX_DIM))
            if not positive and not -MAX_DIM <= x <= MAX_DIM:
                _fail(where, "%s[%d] is %d" % (what, i, x))
            out.append(x)
        elif k == "as_expr":
            _dict(x, where, "%s[%d].as_expr" % (what, i))
            out.append(None)
        else:
            _fail(where, "%s[%d] is a '%s', not as_int or as_expr" % (what, i, k))
    if len(out) > MAX_RANK:
        _fail(where, "%s has rank %d (more than %d)" % (what, len(out), MAX_RANK))
    return out


def validate_model(doc, where):
    """models/<name>.json (already parsed). Raises ConversionError naming ``where`` and the key
    or node."""
    _dict(doc, where, "the document")
    version = doc.get("schema_version", {})
    if version is not None:
        _dict(version, where, "schema_version")
    gm = _dict(doc.get("graph_module"), where, "graph_module")
    graph = _dict(gm.get("graph"), where, "graph_module.graph")
    sig = gm.get("signature") or {}
    _dict(sig, where, "graph_module.signature")
    tvals = _dict(graph.get("tensor_values", {}), where, "graph.tensor_values")
    for name, meta in tvals.items():
        check_tensor_meta(meta, where, "tensor_values['%s']" % name)
    nodes = _list(graph.get("nodes", []), where, "graph.nodes")
    if len(nodes) > MAX_NODES:
        _fail(where, "graph.nodes has %d nodes" % len(nodes))

    defined = {}     # value name -> who defines it

    def define(name, who):
        if name in defined:
            _fail(where, "value '%s' is defined twice (%s and %s); each value must have one producer, "
                         "defined before it is read" % (name, defined[name], who))
        defined[name] = who

    specs = _list(sig.get("input_specs", []), where, "signature.input_specs")
    for i, spec in enumerate(specs):
        what = "signature.input_specs[%d]" % i
        kind, v = _union(spec, where, what)
        _dict(v, where, "%s.%s" % (what, kind))
        if kind == "user_input":
            names = check_argument(v.get("arg"), where, "%s.user_input.arg" % what)
            for n in names:
                define(n, "model input")
        elif kind in ("parameter", "buffer", "tensor_constant"):
            key = {"parameter": "parameter_name", "buffer": "buffer_name",
                   "tensor_constant": "tensor_constant_name"}[kind]
            define(_tensor_name(v.get("arg"), where, "%s.%s.arg" % (what, kind)), "%s input" % kind)
            _str(v.get(key), where, "%s.%s.%s" % (what, kind, key))
        elif kind == "constant_input":
            define(_str(v.get("name"), where, "%s.constant_input.name" % what), "constant input")
            check_argument(v.get("value"), where, "%s.constant_input.value" % what)
        elif isinstance(v.get("arg"), dict) and "name" in v["arg"]:
            define(_tensor_name(v["arg"], where, "%s.%s.arg" % (what, kind)), "%s input" % kind)
    for i, raw in enumerate(nodes):
        what = "graph.nodes[%d]" % i
        _dict(raw, where, what)
        target = _str(raw.get("target"), where, what + ".target")
        label = "node %d (%s%s)" % (i, target, ", '%s'" % raw["name"] if isinstance(raw.get("name"), str) else "")
        if "name" in raw and raw["name"] is not None:
            _str(raw["name"], where, what + ".name")
        meta = raw.get("metadata", {})
        if meta is not None:
            for k, x in _dict(meta, where, what + ".metadata").items():
                _str(x, where, "%s.metadata['%s']" % (what, k))
        reads = []
        for j, a in enumerate(_list(raw.get("inputs", []), where, what + ".inputs")):
            _dict(a, where, "%s.inputs[%d]" % (what, j))
            if a.get("name") is not None:
                _str(a["name"], where, "%s.inputs[%d].name" % (what, j))
            reads += check_argument(a.get("arg"), where, "%s.inputs[%d].arg" % (what, j))
        for r in reads:
            if r not in defined:
                _fail(where, "%s reads '%s', which no graph input or earlier node defines" % (label, r))
        for j, o in enumerate(_list(raw.get("outputs", []), where, what + ".outputs")):
            for n in check_argument(o, where, "%s.outputs[%d]" % (what, j)):
                define(n, label)
    for i, spec in enumerate(_list(sig.get("output_specs", []), where, "signature.output_specs")):
        what = "signature.output_specs[%d]" % i
        kind, v = _union(spec, where, what)
        _dict(v, where, "%s.%s" % (what, kind))
        for n in check_argument(v.get("arg"), where, "%s.%s.arg" % (what, kind)):
            if n not in defined:
                _fail(where, "%s returns '%s', which nothing defines" % (what, n))
    return doc


def validate_config(doc, where):
    """data/<kind>/<name>_<kind>_config.json: {"config": {fqn: PayloadMeta}}."""
    _dict(doc, where, "the document")
    config = _dict(doc.get("config", {}), where, "config")
    for fqn, meta in config.items():
        what = "config['%s']" % fqn
        _dict(meta, where, what)
        if meta.get("use_pickle"):
            continue   # refused by the reader with its own explanation, never opened
        _str(meta.get("path_name"), where, what + ".path_name")
        if "/" in meta["path_name"] or meta["path_name"] in ("", ".", ".."):
            _fail(where, "%s.path_name '%s' is not a member name" % (what, meta["path_name"]))
        check_tensor_meta(meta.get("tensor_meta"), where, what + ".tensor_meta")
    return config
