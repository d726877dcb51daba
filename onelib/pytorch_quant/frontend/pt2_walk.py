"""The .pt2 walker: one pass over the program's nodes, each handed to the reader registered for
its target (``@reader``; the readers are in pt2_ops.py and pt2_ops_layout.py) or, for a target in
the generic table api.py gives (``FrontendServices.generic_reads``), read without a reader of its
own. The walker writes the program as it is (an op reading a quantized tensor reads its
dequantized value; a ``quantize`` op where PyTorch quantizes); where quantize/dequantize ops land
in the end is decided by a source pass, passes/qdq.py ``fold_qdq``, which api.py runs next.
"""
import math

import numpy as np

from ..errors import ConversionError, UnsupportedOpsError
from ..ir import QUANT_INT_DTYPES, Graph, Op, QParams, SourceRecord, Tensor
from .pt2_graph import _Dtype, _Node, _Opaque, _Ref, _Sym, _decode, _op_name
from .pt2_store import SCALAR_TYPES, _check_given_shape, _static_int

READERS = {}


def reader(*targets):
    """Register a reader for aten / quantized_decomposed ops, named without ``torch.ops.``."""
    def deco(fn):
        for t in targets:
            READERS[t] = fn
        return fn
    return deco


# ops that only check shapes or guards at run time: no value, nothing to convert
def _is_check(target):
    return target.endswith("_guards_fn") or "._assert" in target or ".sym_constrain_range" in target


# ops that return their input unchanged in an inference graph
IDENTITY = {"aten.clone.default", "aten.contiguous.default", "aten.alias.default",
            "aten.detach.default", "aten.detach_.default", "aten.lift_fresh_copy.default",
            "aten.dropout.default", "aten.dropout_.default", "aten.feature_dropout.default",
            "aten.alpha_dropout.default"}
# model input dtypes: float32 activations, and integers (ids, masks) read only by the targets in
# READS_IDS: embedding, the shape ops that move integers unchanged (their output keeps the integer
# dtype) and the casts to float (an integer mask becomes a float one: BERT's attention mask)
INDEX_DTYPES = ("int64", "int32")
INPUT_DTYPES = ("float32",) + INDEX_DTYPES
KEEPS_INTEGERS = {"aten.unsqueeze.default", "aten.squeeze.default", "aten.squeeze.dim", "aten.squeeze.dims",
                  "aten.view.default", "aten.reshape.default", "aten._unsafe_view.default",
                  "aten.expand.default"}
READS_IDS = {"aten.embedding.default", "aten.to.dtype", "aten._to_copy.default"} | KEEPS_INTEGERS
QUANTIZE_PER_TENSOR = {"quantized_decomposed.quantize_per_tensor.default",
                       "quantized_decomposed.quantize_per_tensor.tensor",
                       "quantized_decomposed.quantize_per_tensor.tensor2"}


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class _QSpec(object):
    """What one quantize/dequantize op says about its integers."""
    __slots__ = ("dtype", "qparams", "qmin", "qmax")

    def __init__(self, dtype, qparams, qmin, qmax):
        self.dtype, self.qparams, self.qmin, self.qmax = dtype, qparams, int(qmin), int(qmax)

    def matches(self, t):
        """True when tensor ``t`` already holds integers on this grid."""
        return t.qparams is not None and t.dtype == self.dtype and self.qparams.same_as(t.qparams)


class _QInts(object):
    """Integers a quantize op computed from a constant (``convert_pt2e(fold_quantize=False)``)."""

    def __init__(self, data, spec):
        self.data, self.spec = data, spec


class _Unsupported(Exception):
    """A known op used in a way we do not convert (the reason is listed with the op)."""


_OUTPUT = object()   # a graph output, as a "user" of a value


class _Walker(object):
    def __init__(self, archive, doc, options, source, services):
        self.archive = archive
        self.services = services
        self.options = options
        self.source = source
        gm = doc["graph_module"]
        self.jgraph = gm["graph"]
        self.signature = gm.get("signature") or {}
        self.nodes = [_Node(n) for n in self.jgraph.get("nodes", [])]
        self.graph = Graph(source=source)
        self.values = {}       # model.json tensor name -> Tensor | _QInts | None (unconvertible)
        self.lazy = {}         # placeholder name -> state-dict / constant name, read on first use
        self.unsupported = []  # (name, reason)
        self.alias = {}        # output of an identity op -> its input
        self.users = {}        # value name -> [node or _OUTPUT]
        self.outputs = []      # names of the user outputs
        # for the fidelity report only (SourceRecord.nodes): id(Tensor) -> name of the graph node
        # whose value it holds (a quantize node for integer codes, else the float node)
        self.node_of = {}
        self.dequantized = []  # (quantized Tensor, a dequantize node reading its integers)

    # -- setup -------------------------------------------------------------------------------
    def _read_signature(self):
        tvals = self.jgraph.get("tensor_values", {})
        shapes = self.options.input_shapes or []
        n_user = 0
        for spec in self.signature.get("input_specs", []):
            (kind, v), = spec.items()
            if kind == "user_input":
                arg = _decode(v["arg"])
                if not isinstance(arg, _Ref):
                    raise ConversionError("%s: a model input is not a tensor (%s); export with tensor "
                                          "inputs only" % (self.source, type(arg).__name__))
                meta = tvals.get(arg.name, {})
                dtype = SCALAR_TYPES.get(meta.get("dtype"), "?")
                if dtype not in INPUT_DTYPES:
                    # listed with the unsupported ops (one error), its readers are not read
                    self.unsupported.append((arg.name, "input of dtype %s (a model input is float32, or "
                                                       "int64/int32 ids read by embedding)" % dtype))
                    self.values[arg.name] = None
                    n_user += 1
                    continue
                sizes = meta.get("sizes", [])
                if n_user < len(shapes) and shapes[n_user]:
                    shape = tuple(int(s) for s in shapes[n_user])   # a dynamic dim, pinned by the user
                    _check_given_shape(self.source, arg.name, sizes, shape)
                else:
                    shape = tuple(_static_int(s, "dimension of input '%s'" % arg.name, self.source)
                                  for s in sizes)
                t = Tensor(arg.name, shape, dtype)
                self.node_of[id(t)] = arg.name
                self.graph.inputs.append(t)
                self.values[arg.name] = t
                n_user += 1
            elif kind in ("parameter", "buffer", "tensor_constant"):
                key = {"parameter": "parameter_name", "buffer": "buffer_name",
                       "tensor_constant": "tensor_constant_name"}[kind]
                self.lazy[v["arg"]["name"]] = v[key]
            elif kind == "constant_input":
                self.values[v["name"]] = _decode(v["value"])
            else:  # custom_obj, token: nothing a quantized CNN needs; fail where read
                name = v.get("arg", {}).get("name") if isinstance(v.get("arg"), dict) else None
                if name:
                    self.lazy[name] = None
        if len(shapes) > n_user:
            raise ConversionError("%s: %d input shapes given, but the program has %d input%s"
                                  % (self.source, len(shapes), n_user, "" if n_user == 1 else "s"))
        for spec in self.signature.get("output_specs", []):
            (kind, v), = spec.items()
            if kind != "user_output":
                raise ConversionError("%s: the program has a '%s' output (it mutates state); export "
                                      "the model in eval mode without in-place buffer updates"
                                      % (self.source, kind))
            arg = _decode(v["arg"])
            if not isinstance(arg, _Ref):
                raise ConversionError("%s: the model returns a non-tensor value" % self.source)
            self.outputs.append(arg.name)

    def _index_uses(self):
        """Identity ops become aliases; every value learns who reads it (through aliases)."""
        for node in self.nodes:
            if (node.target in IDENTITY and self._identity_ok(node)) or self._full_slice(node):
                src = node.args.get("self", node.args.get("input"))
                if isinstance(src, _Ref) and node.output:
                    self.alias[node.output] = self.resolve(src.name)
        for node in self.nodes:
            if node.output in self.alias or _is_check(node.target):
                continue
            for r in node.refs():
                self.users.setdefault(self.resolve(r), []).append(node)
        for o in self.outputs:
            self.users.setdefault(self.resolve(o), []).append(_OUTPUT)

    @staticmethod
    def _identity_ok(node):
        return not (node.target.startswith("aten.dropout") or "_dropout" in node.target) or \
            not node.args.get("train", False)

    def _full_slice(self, node):
        """``x[:, 0:n]`` over the whole axis with step 1 returns ``x`` (an alias, so that the op
        before it still folds into the quantizer after it)."""
        if node.target != "aten.slice.Tensor":
            return False
        try:
            bounds = _slice_bounds(self, node)
        except (_Unsupported, ConversionError, TypeError, ValueError, KeyError, IndexError,
                AttributeError, ArithmeticError):   # the reader says why, naming the node
            return False
        return bounds[1] == 0 and bounds[2] == bounds[3] and bounds[4] == 1

    def resolve(self, name):
        while name in self.alias:
            name = self.alias[name]
        return name

    # -- walk --------------------------------------------------------------------------------
    def walk(self):
        self._read_signature()
        self._index_uses()
        for name, fqn in self.lazy.items():
            if fqn is not None and name in self.users:
                self.archive.refuse_pickled(fqn)
        for node in self.nodes:
            self.visit(node)
        if self.unsupported:
            raise UnsupportedOpsError(self.source, self.unsupported)
        for name in self.outputs:
            v = self.values.get(self.resolve(name))
            if not isinstance(v, Tensor) or v.is_const:
                raise ConversionError("%s: output '%s' is not computed from the inputs" % (self.source, name))
            self.graph.outputs.append(v)
        # in memory only, for the fidelity report; the conversion never reads it
        return self.graph, SourceRecord("pt2", nodes=self.node_of, dequantized=self.dequantized)

    def visit(self, node):
        if _is_check(node.target) or node.output in self.alias:
            return
        fn = READERS.get(node.target)
        if fn is None and node.target in self.services.generic_reads:
            fn = _read_generic
        if fn is None and node.target in self.services.folds:
            fn = _not_constant
        if fn is None:
            self._unsupported(node, node.target)
            return
        if any(self.values.get(self.resolve(r), 0) is None for r in node.refs()):
            self._mark_unconvertible(node)   # reads a value an unsupported op made: already listed
            return
        if node.target not in READS_IDS:
            ids = [self.values.get(self.resolve(r)) for r in node.refs()]
            ids = [t.name for t in ids if isinstance(t, Tensor) and not t.is_const and t.dtype in INDEX_DTYPES]
            if ids:
                self._unsupported(node, "%s: reads the integer input '%s' (integer inputs are ids for "
                                        "embedding, or go through shape ops to a cast to float)"
                                  % (node.target, ids[0]))
                return
        try:
            if node.target in self.services.folds and self._fold(node):
                return
            fn(self, node)
        except _Unsupported as e:
            self._unsupported(node, "%s: %s" % (node.target, e))
        except ConversionError:
            raise
        except (TypeError, KeyError, ValueError, AttributeError, IndexError, OverflowError,
                ZeroDivisionError, ArithmeticError) as e:
            # arguments of a type or value the op's schema does not allow: name the node
            raise ConversionError("%s: node '%s' (%s): malformed arguments: %s: %s"
                                  % (self.source, node.name, node.target, type(e).__name__,
                                     _first_line(e)))

    def _fold(self, node):
        """A node whose kind declares ``fold`` and whose tensor arguments (those the fold reads)
        are constants: evaluated now (``services.fold``, numpy) into a constant; False otherwise.
        Constant tensors are handed over as their arrays (float values for quantized ones), not
        copies: an in-place op (``fill_`` of a ``slice`` view) writes through to its base."""
        kind, reads = self.services.folds[node.target]
        if len(node.outputs) != 1:
            return False
        args = {}
        for key, ref in node.args.items():
            v = self.value(ref)
            if isinstance(ref, list):
                if any(isinstance(e, _Ref) for e in ref):
                    if not all(e is None or _const_array(e) is not None for e in v):
                        return False
                    v = [None if e is None else _const_array(e) for e in v]
            elif isinstance(ref, _Ref):
                if reads is not None and key not in reads:
                    v = None   # only its dtype/device matter (new_zeros): not read
                else:
                    v = _const_array(v)
                    if v is None:
                        return False
            args[key] = v
        meta = self.jgraph.get("tensor_values", {}).get(node.output) or {}
        shape = None
        if "sizes" in meta:
            shape = tuple(_static_int(d, "dimension of %s" % node.output, self.source) for d in meta["sizes"])
        dtype = SCALAR_TYPES.get(meta.get("dtype"))
        where = "%s: node '%s'" % (self.source, node.name)
        data = self.services.fold(node.target, kind, args, shape, dtype, where)
        self.values[node.output] = Tensor(_op_name(node), data.shape, str(data.dtype), None, data)
        return True

    def _unsupported(self, node, reason):
        self.unsupported.append((_op_name(node), reason))
        self._mark_unconvertible(node)

    def _mark_unconvertible(self, node):
        for o in node.outputs:
            self.values[o] = None

    # -- values ------------------------------------------------------------------------------
    def value(self, ref):
        if isinstance(ref, list):
            return [self.value(r) for r in ref]
        if not isinstance(ref, _Ref):
            return ref
        name = self.resolve(ref.name)
        if name in self.values:
            return self.values[name]
        if name in self.lazy:
            fqn = self.lazy[name]
            if fqn is None:
                raise _Unsupported("reads '%s', a custom object or token input" % name)
            arr = self.archive.tensor(fqn)
            t = Tensor(fqn, arr.shape, str(arr.dtype), None, arr)
            self.values[name] = t
            return t
        raise ConversionError("%s: internal: '%s' is read before it is defined" % (self.source, name))

    def arg(self, node, key, default=None):
        v = node.args.get(key, default)
        return default if v is None else v

    def act(self, node, key="self"):
        """An activation argument (a Tensor computed from the inputs)."""
        v = self.value(node.args.get(key))
        if not isinstance(v, Tensor) or v.is_const:
            raise _Unsupported("argument '%s' is %s, not a tensor computed from the inputs"
                               % (key, "a constant" if isinstance(v, (Tensor, _QInts)) else repr(v)))
        return v

    def const(self, node, key, name):
        """A weight or bias argument: a constant Tensor (quantized when a dequantize made it)."""
        v = self.value(node.args.get(key))
        if v is None:
            return None
        if not isinstance(v, Tensor) or not v.is_const:
            raise _Unsupported("argument '%s' is computed at run time; only constant weights convert" % key)
        if v.qparams is None and v.dtype != "float32":
            data = v.data.astype(np.float32)
            return Tensor(name, data.shape, "float32", None, data)
        return Tensor(name, v.shape, v.dtype, v.qparams, v.data)

    def float_input(self, t):
        """An explicit ``dequantize`` of activation ``t`` (itself when it is float): PyTorch
        computes the op reading it in float whatever follows (passes/qdq.py shares these)."""
        if t.qparams is None:
            return t
        f = Tensor(t.name + "/dequantize", None, "float32", None)
        self.graph.ops.append(Op("dequantize", [t], [f], {}, f.name))
        return f

    # -- quantization of op outputs -----------------------------------------------------------
    def qspec(self, node, dtypes=QUANT_INT_DTYPES):
        """The dtype/qparams/range of a per-tensor quantize or dequantize node."""
        dt = node.args.get("dtype")
        dtype = dt.name if isinstance(dt, _Dtype) else None
        if dtype not in dtypes:
            raise _Unsupported("quantizes to %s; activations convert as uint8, int8 or int16"
                               % (dtype or repr(dt)))
        scale = self._scalar(node, "scale", float)
        zp = self._scalar(node, "zero_point", int)
        qmin, qmax = int(self.arg(node, "quant_min")), int(self.arg(node, "quant_max"))
        if not (scale > 0 and math.isfinite(scale)):
            raise _Unsupported("scale %r is not a positive number" % scale)
        return _QSpec(dtype, QParams(np.float32(scale), zp), qmin, qmax)

    def _scalar(self, node, key, kind):
        v = node.args.get(key)
        if isinstance(v, _Ref):  # the .tensor overloads: a one-element constant
            t = self.value(v)
            if not isinstance(t, Tensor) or not t.is_const or t.data.size != 1:
                raise _Unsupported("%s is computed at run time (dynamic quantization has no fixed "
                                   "qparams to convert)" % key)
            v = t.data.reshape(-1)[0]
        if isinstance(v, (_Sym, _Opaque)) or v is None:
            raise _Unsupported("%s is not a constant" % key)
        return kind(v)

    def emit(self, kind, node, acts, consts=(), attrs=None, quantizable=True, name=None):
        """Add source op ``kind`` reading activations ``acts`` (a quantized one: its dequantized
        value) then ``consts``, with a float output; ``quantizable=False``: PyTorch computes it on
        dequantized values whatever follows (float weights, arithmetic with a constant).
        passes/qdq.py ``fold_qdq`` then quantizes it where PyTorch quantizes its output."""
        name = name or _op_name(node)
        if not quantizable:
            acts = [self.float_input(a) for a in acts]
        dtype = "float32"
        if node.target in KEEPS_INTEGERS and acts and all(a.dtype in INDEX_DTYPES for a in acts):
            dtype = acts[0].dtype   # a shape op moves the integers unchanged
        out = Tensor(name, None, dtype, None)
        self.graph.ops.append(Op(kind, list(acts) + list(consts), [out], attrs, name))
        self.node_of[id(out)] = node.output   # its quantize node, if any, takes over
        self.values[node.output] = out
        return out


def _sizes(w, ref, what):
    """The static shape of value ``ref`` as the program records it (tensor_values)."""
    name = ref.name if isinstance(ref, _Ref) else None
    meta = w.jgraph.get("tensor_values", {}).get(name) if name else None
    if not meta or "sizes" not in meta:
        raise _Unsupported("the shape of %s is not recorded" % what)
    return [_static_int(v, "dimension of %s" % what, w.source) for v in meta["sizes"]]


def _slice_bounds(w, node):
    """(dim, start, end, size of the axis) of ``aten.slice.Tensor``, clamped as PyTorch does."""
    shape = _sizes(w, node.args.get("self"), "the input")
    d = int(w.arg(node, "dim", 0)) % len(shape)
    n = shape[d]
    a, b, step = w.arg(node, "start", 0), w.arg(node, "end", n), w.arg(node, "step", 1)
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (a, b, step)):
        raise _Unsupported("start, end or step (%r, %r, %r) is not a constant" % (a, b, step))
    if step < 1:
        raise _Unsupported("slice with step %d" % step)
    a, b = (a + n if a < 0 else a), (b + n if b < 0 else b)
    a, b = max(0, min(a, n)), max(0, min(b, n))
    if b <= a:
        raise _Unsupported("empty slice %d:%d of an axis of %d" % (a, b, n))
    return d, a, b, n, step


_PLAIN = (bool, int, float, str, type(None))


def _const_array(v):
    """The array of a constant tensor (the float values of quantized integers, as the op reads
    them after their dequantize), else None."""
    if not isinstance(v, Tensor) or not v.is_const:
        return None
    if v.qparams is None:
        return v.data
    q = v.qparams
    shape = [1] * v.data.ndim
    if not q.per_tensor:
        shape[q.axis % v.data.ndim] = -1
    scale = q.scale.astype(np.float32).reshape(shape if not q.per_tensor else [])
    zp = q.zero_point.astype(np.float32).reshape(shape if not q.per_tensor else [])
    return ((v.data.astype(np.float32) - zp) * scale).astype(np.float32)


def _not_constant(w, node):
    raise _Unsupported("converted only when its inputs are constants (it is folded)")


def _read_generic(w, node):
    """A node whose target is in the generic table (``FrontendServices.generic_reads``: PyTorch
    name -> (IR kind, argument names)), read without a reader of its own: the arguments named
    there, in that order, that hold activations become the op's inputs, the constant ones its
    attrs under those names; the output is placed as any reader's (``emit``: quantized when
    PyTorch quantizes it and every input is quantized, else float)."""
    kind, names = w.services.generic_reads[node.target]
    acts, attrs = [], {}
    for name in names:
        if name not in node.args:
            continue
        v = w.value(node.args[name])
        if isinstance(v, Tensor) and not v.is_const:
            acts.append(v)
        elif isinstance(v, _PLAIN) or (isinstance(v, list) and all(isinstance(e, _PLAIN) for e in v)):
            attrs[name] = v
        else:
            raise _Unsupported("argument '%s' is neither a tensor computed from the inputs nor a "
                               "constant number" % name)
    if not acts or len(node.outputs) != 1:
        raise _Unsupported("read as %s: needs an activation argument and one output" % kind)
    w.emit(kind, node, acts, attrs=attrs)
