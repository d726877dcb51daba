"""TorchScript archives of eager- or FX-quantized models -> source-stage IR.

The archive is loaded and frozen, never run: ``torch.jit.freeze`` turns every qparam into a
constant and every packed weight into a ScriptObject constant, and keeps the module hierarchy on
each inlined node (``getModuleHierarchy``), which gives tensor names the user knows.
Each TorchScript op kind maps to one reader function in ``READERS``; a reader turns the node into
one source op (see ``ops/`` for what each source op means).
"""
import re

import numpy as np

from ..errors import ConversionError, UnsupportedOpsError
from ..ir import Graph, Op, QParams, Tensor
from ..ops import registry

# torch ScalarType codes used by aten::quantize_per_tensor
_QDTYPE = {13: "uint8", 12: "int8", 14: "int32"}

READERS = {}


def reader(*kinds):
    def deco(fn):
        for k in kinds:
            READERS[k] = fn
        return fn
    return deco


def load_torchscript(path, options):
    import torch
    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as e:  # torch's own message says what is wrong with the archive
        raise ConversionError("%s: cannot load as TorchScript: %s" % (path, str(e).strip().splitlines()[0]))
    return from_script_module(module, options, path)


def from_script_module(module, options, source):
    import torch
    module = module.eval()
    try:
        frozen = torch.jit.freeze(module)
    except Exception as e:
        raise ConversionError("%s: torch.jit.freeze failed (%s)" % (source, str(e).strip().splitlines()[0]))
    names = _qfunctional_names(module)
    walker = _Walker(source, options, names)
    return walker.walk(frozen.graph)


def _module_path(node):
    """'features.3(Seq).conv(Conv2d)' -> 'features.3.conv'"""
    try:
        h = node.getModuleHierarchy()
    except Exception:
        return ""
    return re.sub(r"\([^()]*\)", "", h or "")


def _qfunctional_names(module):
    """FloatFunctional ops (add, cat, ...) leave no module on the inlined node; in the unfrozen
    graph each such op is followed by a call to ``<path>.activation_post_process``. Map the op's
    literal output qparams to that path so the tensor gets the user's name (e.g. ``ff_add``)."""
    found = {}

    def visit(mod, prefix):
        try:
            graph = mod.graph
        except Exception:
            return
        attr_path = {}
        nodes = list(graph.nodes())
        for n in nodes:
            if n.kind() == "prim::GetAttr":
                parent = attr_path.get(n.input().unique(), prefix)
                attr_path[n.output().unique()] = (parent + "." if parent else "") + n.s("name")
        for i, n in enumerate(nodes):
            if n.kind().startswith("quantized::") and i + 1 < len(nodes):
                nxt = nodes[i + 1]
                if nxt.kind() == "prim::CallMethod":
                    p = attr_path.get(list(nxt.inputs())[0].unique(), "")
                    if p.endswith(".activation_post_process"):
                        key = _qkey(n)
                        if key is not None:
                            found.setdefault(key, p[: -len(".activation_post_process")])
        for name, child in mod.named_children():
            visit(child, (prefix + "." if prefix else "") + name)

    visit(module, "")
    return found


def _qkey(node):
    ins = list(node.inputs())
    if len(ins) < 2:
        return None
    try:
        s, z = ins[-2].toIValue(), ins[-1].toIValue()
    except Exception:
        return None
    if isinstance(s, float) and isinstance(z, int):
        return (node.kind(), round(s, 12), z)
    return None


class _Walker(object):
    def __init__(self, source, options, qf_names):
        self.source = source
        self.options = options
        self.qf_names = qf_names
        self.values = {}       # torch Value.unique() -> Tensor or python constant
        self.graph = Graph(source=source)
        self.unsupported = []
        self.counter = {}

    # -- value access ------------------------------------------------------------------------
    def const(self, v):
        return self.values.get(v.unique(), None) if v.node().kind() != "prim::Constant" else v.toIValue()

    def tensor(self, v, node):
        t = self.values.get(v.unique())
        if not isinstance(t, Tensor) and self.unsupported:
            return Tensor(v.debugName(), None, "float32")  # downstream of an unsupported op
        if not isinstance(t, Tensor):
            raise ConversionError("%s: %s (%s) reads a value that is not a quantized activation"
                                  % (self.source, node.kind(), self.path(node)))
        return t

    def path(self, node):
        return _module_path(node)

    def name_for(self, node, suffix=""):
        p = self.path(node)
        if not p:
            key = _qkey(node)
            p = self.qf_names.get(key, "") if key else ""
        if not p:
            base = node.kind().split("::")[-1]
            dbg = node.output().debugName() if len(list(node.outputs())) == 1 else ""
            p = re.sub(r"\.\d+$", "", dbg) if dbg and not dbg[0].isdigit() else base
        return p + suffix

    # -- walk --------------------------------------------------------------------------------
    def walk(self, tgraph):
        inputs = list(tgraph.inputs())[1:]  # the first input is the module itself
        shapes = self.options.input_shapes
        for i, v in enumerate(inputs):
            name = re.sub(r"\.\d+$", "", v.debugName()) or "input%d" % i
            shape = None
            if shapes and i < len(shapes):
                shape = tuple(shapes[i])
            t = Tensor(name, shape, "float32")
            self.graph.inputs.append(t)
            self.values[v.unique()] = t
        for node in tgraph.nodes():
            self.visit(node)
        if self.unsupported:
            raise UnsupportedOpsError(self.source, self.unsupported)
        outs = list(tgraph.outputs())
        for v in outs:
            t = self.values.get(v.unique())
            if isinstance(t, (list, tuple)):
                self.graph.outputs.extend(t)
            elif isinstance(t, Tensor):
                self.graph.outputs.append(t)
            else:
                raise ConversionError("%s: the model returns a non-tensor value" % self.source)
        self._fill_input_shapes()
        registry.infer_shapes(self.graph)
        return self.graph

    def _fill_input_shapes(self):
        """TorchScript keeps no input shapes. Read what the graph pins down; otherwise ask."""
        for t in self.graph.inputs:
            if t.shape is not None:
                continue
            cons = [op for op in self.graph.ops if t in op.inputs]
            guess = None
            for op in cons:
                if op.kind == "quantize":
                    nxt = [o for o in self.graph.ops if op.outputs[0] in o.inputs]
                    for o in nxt:
                        if o.kind == "linear":
                            guess = (1, o.inputs[1].shape[1])
            if guess is None:
                hint = ""
                for op in self.graph.ops:
                    if op.kind == "conv2d":
                        hint = " (the first conv takes %d channels, e.g. 1,%d,224,224)" % (
                            op.inputs[1].shape[1] * op.attrs["groups"], op.inputs[1].shape[1] * op.attrs["groups"])
                        break
                raise ConversionError("%s: TorchScript stores no input shape for '%s'; give --input_shapes%s"
                                      % (self.source, t.name, hint))
            t.shape = guess

    def visit(self, node):
        kind = node.kind()
        if kind == "prim::Constant":
            return
        if kind in ("prim::If", "prim::Loop"):
            self.unsupported.append((self.path(node), kind + " (control flow; trace the model instead of scripting it)"))
            return
        fn = READERS.get(kind)
        if fn is None:
            self.unsupported.append((self.path(node), kind))
            self._placeholders(node)
            return
        try:
            fn(self, node)
        except ConversionError:
            raise
        except _Unsupported as e:
            self.unsupported.append((self.path(node), "%s: %s" % (kind, e)))
            self._placeholders(node)

    def _placeholders(self, node):
        """Outputs of an op we cannot convert: keep walking so every such op is listed at once."""
        for o in node.outputs():
            self.values[o.unique()] = Tensor(o.debugName(), None, "float32")

    # -- helpers for readers -----------------------------------------------------------------
    def emit(self, kind, node, inputs, attrs=None, qparams=None, dtype=None, suffix=""):
        """Add a source op whose single output takes ``qparams`` (None: inherit input 0's)."""
        ins = [i for i in inputs]
        src = ins[0] if ins and isinstance(ins[0], Tensor) else None
        if qparams is None and src is not None:
            qparams = src.qparams.copy() if src.qparams is not None else None
        if dtype is None:
            dtype = src.dtype if src is not None else "float32"
        name = self.name_for(node, suffix)
        out = Tensor(name, None, dtype, qparams)
        op = Op(kind, ins, [out], attrs, name=name)
        self.graph.ops.append(op)
        self.values[node.output().unique()] = out
        return op


class _Unsupported(Exception):
    """A known op kind used in a way we do not convert (the reason is listed with the op)."""


def _qp(scale, zp):
    return QParams(np.float32(scale), int(zp))


def _inputs(node):
    return list(node.inputs())


# ------------------------------------------------------------------------------- readers
@reader("prim::ListConstruct", "prim::TupleConstruct")
def _list(w, node):
    w.values[node.output().unique()] = [w.values.get(v.unique()) if v.node().kind() != "prim::Constant"
                                         else v.toIValue() for v in node.inputs()]


@reader("prim::ListUnpack", "prim::TupleUnpack")
def _unpack(w, node):
    items = w.values.get(node.input().unique())
    for o, it in zip(node.outputs(), items or []):
        w.values[o.unique()] = it


@reader("prim::GetAttr")
def _getattr(w, node):
    w.values[node.output().unique()] = None


@reader("aten::size")
def _size(w, node):
    ins = _inputs(node)
    t = w.tensor(ins[0], node)
    if t.shape is None:
        registry.infer_shapes(w.graph)
    if t.shape is None:
        raise _Unsupported("size of a tensor whose shape is unknown: give --input_shapes")
    dim = w.const(ins[1]) if len(ins) > 1 else None
    w.values[node.output().unique()] = t.shape[dim] if dim is not None else list(t.shape)


@reader("prim::NumToTensor", "aten::Int", "aten::IntImplicit", "aten::FloatImplicit", "aten::ScalarImplicit")
def _num(w, node):
    w.values[node.output().unique()] = w.const(node.input())


@reader("aten::quantize_per_tensor")
def _quantize(w, node):
    x, s, z, dt = _inputs(node)
    dtype = _QDTYPE.get(w.const(dt))
    if dtype not in ("uint8", "int8"):
        raise _Unsupported("quantize to torch dtype code %r" % w.const(dt))
    w.emit("quantize", node, [w.tensor(x, node)], qparams=_qp(w.const(s), w.const(z)), dtype=dtype)


@reader("aten::dequantize")
def _dequantize(w, node):
    w.emit("dequantize", node, [w.tensor(node.input(), node)], qparams=None, dtype="float32")
    w.graph.ops[-1].outputs[0].qparams = None


def _weight_tensor(w, node, qw, name):
    """A torch qint8 weight -> int8 Tensor with its qparams (channel axis as torch has it)."""
    import torch
    ints = qw.int_repr().numpy().copy()
    if qw.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        q = QParams(qw.q_per_channel_scales().numpy().astype(np.float32),
                    qw.q_per_channel_zero_points().numpy().astype(np.int64), qw.q_per_channel_axis())
    elif qw.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        q = QParams(np.float32(qw.q_scale()), qw.q_zero_point())
    else:
        raise _Unsupported("weight quantization scheme %s" % qw.qscheme())
    dtype = {torch.qint8: "int8", torch.quint8: "uint8"}.get(qw.dtype)
    if dtype is None:
        raise _Unsupported("weight dtype %s" % qw.dtype)
    return Tensor(name + ".weight", ints.shape, dtype, q, ints.astype(dtype))


def _bias_tensor(b, name):
    if b is None:
        return None
    arr = b.detach().float().numpy().astype(np.float32).copy()
    return Tensor(name + ".bias", arr.shape, "float32", None, arr)


@reader("quantized::conv2d", "quantized::conv2d_relu")
def _conv2d(w, node):
    import torch
    x, packed, s, z = _inputs(node)[:4]
    pp = w.const(packed)
    if pp is None:
        raise _Unsupported("packed weights are not a constant (freeze failed to fold them)")
    if pp.transpose():
        raise _Unsupported("transposed convolution")
    qw, b = torch.ops.quantized.conv2d_unpack(pp)
    name = w.name_for(node)
    attrs = {"stride": list(pp.stride()), "padding": list(pp.padding()), "dilation": list(pp.dilation()),
             "groups": int(pp.groups()), "act": "relu" if node.kind().endswith("_relu") else None}
    w.emit("conv2d", node, [w.tensor(x, node), _weight_tensor(w, node, qw, name), _bias_tensor(b, name)],
           attrs, qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::linear", "quantized::linear_relu")
def _linear(w, node):
    import torch
    x, packed, s, z = _inputs(node)[:4]
    pp = w.const(packed)
    if pp is None:
        raise _Unsupported("packed weights are not a constant")
    qw, b = torch.ops.quantized.linear_unpack(pp)
    name = w.name_for(node)
    attrs = {"act": "relu" if node.kind().endswith("_relu") else None}
    w.emit("linear", node, [w.tensor(x, node), _weight_tensor(w, node, qw, name), _bias_tensor(b, name)],
           attrs, qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::add", "quantized::add_relu", "quantized::mul", "quantized::mul_relu")
def _binary(w, node):
    a, b, s, z = _inputs(node)
    kind = node.kind().split("::")[1]
    w.emit(kind.replace("_relu", ""), node, [w.tensor(a, node), w.tensor(b, node)],
           {"act": "relu" if kind.endswith("_relu") else None}, qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::add_scalar", "quantized::add_scalar_relu", "quantized::mul_scalar", "quantized::mul_scalar_relu")
def _binary_scalar(w, node):
    a, c = _inputs(node)[:2]
    kind = node.kind().split("::")[1]
    w.emit(kind.replace("_relu", ""), node, [w.tensor(a, node)],
           {"scalar": float(w.const(c)), "act": "relu" if kind.endswith("_relu") else None}, qparams=None)
    # the output qparams are derived by the op itself (see ops/elementwise.py)
    registry.derive_qparams(w.graph.ops[-1])


@reader("quantized::cat", "aten::cat")
def _cat(w, node):
    ins = _inputs(node)
    items = w.values.get(ins[0].unique())
    if not items or not all(isinstance(t, Tensor) for t in items):
        raise _Unsupported("cat of values that are not activations")
    dim = w.const(ins[1])
    if node.kind() == "quantized::cat":
        q = _qp(w.const(ins[2]), w.const(ins[3]))
    else:  # aten::cat on quantized tensors keeps the (shared) qparams of its inputs
        q = items[0].qparams.copy() if items[0].qparams is not None else None
    w.emit("cat", node, items, {"dim": int(dim)}, qparams=q, dtype=items[0].dtype)


@reader("quantized::hardswish")
def _hardswish(w, node):
    x, s, z = _inputs(node)
    w.emit("hardswish", node, [w.tensor(x, node)], qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::sigmoid")
def _qsigmoid(w, node):
    x, s, z = _inputs(node)
    w.emit("sigmoid", node, [w.tensor(x, node)], qparams=_qp(w.const(s), w.const(z)))


@reader("aten::sigmoid", "aten::sigmoid_")
def _sigmoid(w, node):
    # quantized sigmoid in PyTorch has fixed output qparams: 1/256, zero point 0 (quint8)
    w.emit("sigmoid", node, [w.tensor(node.input(), node)], qparams=_qp(1.0 / 256.0, 0))


@reader("aten::relu", "aten::relu_", "quantized::relu")
def _relu(w, node):
    w.emit("hardtanh", node, [w.tensor(_inputs(node)[0], node)], {"min": 0.0, "max": float("inf")})


@reader("quantized::relu6", "aten::relu6", "aten::relu6_")
def _relu6(w, node):
    w.emit("hardtanh", node, [w.tensor(_inputs(node)[0], node)], {"min": 0.0, "max": 6.0})


@reader("aten::hardtanh", "aten::hardtanh_", "quantized::hardtanh")
def _hardtanh(w, node):
    ins = _inputs(node)
    w.emit("hardtanh", node, [w.tensor(ins[0], node)],
           {"min": float(w.const(ins[1])), "max": float(w.const(ins[2]))})


@reader("aten::max_pool2d")
def _max_pool2d(w, node):
    x, k, s, p, d, ceil = _inputs(node)
    k = list(w.const(k))
    s = list(w.const(s)) or k
    w.emit("max_pool2d", node, [w.tensor(x, node)],
           {"kernel": _pair(k), "stride": _pair(s), "padding": _pair(w.const(p)),
            "dilation": _pair(w.const(d)), "ceil_mode": bool(w.const(ceil))})


@reader("aten::avg_pool2d")
def _avg_pool2d(w, node):
    x, k, s, p, ceil, cip, div = _inputs(node)
    k = list(w.const(k))
    s = list(w.const(s)) or k
    w.emit("avg_pool2d", node, [w.tensor(x, node)],
           {"kernel": _pair(k), "stride": _pair(s), "padding": _pair(w.const(p)),
            "ceil_mode": bool(w.const(ceil)), "count_include_pad": bool(w.const(cip)),
            "divisor_override": w.const(div)})


@reader("aten::adaptive_avg_pool2d", "quantized::adaptive_avg_pool2d")
def _adaptive_avg_pool2d(w, node):
    x, size = _inputs(node)[:2]
    w.emit("adaptive_avg_pool2d", node, [w.tensor(x, node)], {"output_size": _pair(w.const(size))})


@reader("aten::mean")
def _mean(w, node):
    ins = _inputs(node)
    dims = w.const(ins[1])
    keep = bool(w.const(ins[2])) if len(ins) > 2 else False
    w.emit("mean", node, [w.tensor(ins[0], node)], {"dims": list(dims), "keepdim": keep})


@reader("aten::flatten")
def _flatten(w, node):
    x, start, end = _inputs(node)
    w.emit("flatten", node, [w.tensor(x, node)], {"start": int(w.const(start)), "end": int(w.const(end))})


@reader("aten::reshape", "aten::view")
def _reshape(w, node):
    x, shape = _inputs(node)
    sh = w.const(shape)
    if sh is None or any(not isinstance(v, int) for v in sh):
        raise _Unsupported("target shape is not constant")
    w.emit("reshape", node, [w.tensor(x, node)], {"shape": [int(v) for v in sh]})


@reader("aten::contiguous", "aten::dropout", "aten::dropout_", "aten::feature_dropout", "aten::alpha_dropout",
        "aten::detach", "aten::clone")
def _identity(w, node):
    w.values[node.output().unique()] = w.tensor(_inputs(node)[0], node)


def _pair(v):
    if isinstance(v, int):
        return [v, v]
    v = list(v)
    return v * 2 if len(v) == 1 else v
