"""TorchScript archives of eager- or FX-quantized models -> source-stage IR.

The archive is loaded, never run. A traced model's forward is inlined (a copy: the module is not
touched) and its ``prim::GetAttr`` chains are resolved against the module itself: numbers and
tensors become graph constants, packed weights are read from the module's attributes, and the
passes ``torch.jit.freeze`` would run (dead code, common subexpressions, constant propagation)
run on the copy, so the walk sees what it would see after freeze without freeze's cost (it clones
the module and repacks every weight: about as long as loading the archive). Scripted models
(control flow that folds once shapes are known) and anything the fast path cannot resolve are
frozen and walked as before. Inlined nodes keep the module hierarchy (``getModuleHierarchy``),
which gives tensor names the user knows.
Each TorchScript op kind maps to one reader function in ``READERS``; a reader turns the node into
one source op (see ``ops/`` for what each source op means).
"""
import re

import numpy as np

from ..errors import ConversionError, UnsupportedOpsError
from ..ir import Graph, Op, QParams, SourceRecord, Tensor

# torch ScalarType codes used by aten::quantize_per_tensor
_QDTYPE = {13: "uint8", 12: "int8", 14: "int32"}

READERS = {}


def reader(*kinds):
    def deco(fn):
        for k in kinds:
            READERS[k] = fn
        return fn
    return deco


def load_torchscript(path, options, services):
    """A TorchScript archive -> (source-stage graph, SourceRecord). ``services``: a
    ``frontend.FrontendServices`` (api.py makes it)."""
    from .ts_archive import inspect_archive
    import torch
    # one open file for the check and the load (an open file, not the name, also because torch's
    # C++ side needs names it can encode as UTF-8)
    with open(path, "rb") as f:
        inspect_archive(f, path)   # before torch.jit.load runs any of the archive's code
        f.seek(0)
        try:
            module = torch.jit.load(f, map_location="cpu")
        except Exception as e:  # torch's own message says what is wrong with the archive
            raise ConversionError("%s: cannot load as TorchScript: %s" % (path, str(e).strip().splitlines()[0]))
    return from_script_module(module, options, path, services)


def from_script_module(module, options, source, services):
    import torch
    module = module.eval()
    names = _qfunctional_names(module)
    # the walk calls a few torch kernels (unpack, int_repr) that copy memory: more threads only
    # spin (on a busy machine they cost more CPU time than the copies themselves)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        found = _walk_unfrozen(module, options, source, names, services)
    finally:
        torch.set_num_threads(threads)
    if found is not None:
        return found   # (graph, record)
    try:
        frozen = torch.jit.freeze(module)
    except Exception as e:
        raise ConversionError("%s: torch.jit.freeze failed (%s)" % (source, str(e).strip().splitlines()[0]))
    walker = _Walker(source, options, names, services)
    graph = walker.walk(frozen.graph)
    # kept in memory only, for the fidelity report: which TorchScript value each tensor is
    return graph, SourceRecord("torchscript", module=frozen, values=walker.origin)


# What torch.jit.freeze runs on the inlined graph once the attributes are constants
# (freeze_module.cpp: runOptimization without loop unrolling); the fast path runs the same passes so
# that it walks the same nodes (duplicates merged, dead code gone, constant arithmetic folded).
_FREEZE_PASSES = ("_jit_pass_dce", "_jit_pass_cse", "_jit_pass_peephole", "_jit_pass_constant_propagation",
                  "_jit_pass_constant_pooling", "_jit_pass_cse")
# nodes that need freeze (scripted control flow folds there) or that the fast path does not resolve
_NEEDS_FREEZE = frozenset(["prim::If", "prim::Loop", "prim::SetAttr", "prim::CallMethod", "prim::CallFunction"])


class _InlinedModule(object):
    """What the fidelity report uses of the walked module without freezing it: the walked graph
    (the inlined copy of forward, whose first input is the module) and the module to run it on."""

    def __init__(self, module, graph):
        self._module = module
        self._c = module._c
        self.graph = graph

    def __call__(self, *args):
        return self._module(*args)


def _walk_unfrozen(module, options, source, names, services):
    """The fast path: walk an inlined copy of forward and read the attributes (packed weights,
    qparam tensors) from the module itself. ``torch.jit.freeze`` costs about as much as loading
    the archive (it clones the module, repacking every weight). Returns None when the graph needs
    freeze (scripted control flow, attributes it cannot resolve) or the walk fails: the caller then
    freezes and walks as before, so errors read the same."""
    import torch
    try:
        g = module.forward.graph.copy()
        torch._C._jit_pass_inline(g)
        objects = _inline_attributes(g, module)
        if objects is None:
            return None
        for p in _FREEZE_PASSES:
            getattr(torch._C, p)(g)
    except Exception:
        return None
    for node in g.nodes():
        if node.kind() in _NEEDS_FREEZE or len(list(node.blocks())):
            return None
        if node.kind() == "prim::GetAttr" and node.output().unique() not in objects:
            return None
    walker = _Walker(source, options, names, services, objects)
    try:
        graph = walker.walk(g)
    except Exception:
        return None
    return graph, SourceRecord("torchscript", module=_InlinedModule(module, g), values=walker.origin)


def _inline_attributes(g, module):
    """Resolve ``prim::GetAttr`` chains against ``module``, as freeze would: numbers, strings and
    tensors become constants of the graph (so constant propagation folds what it folds after
    freeze); submodules stay GetAttr; TorchBind objects (packed weights) cannot be graph constants
    here, so they are returned: {GetAttr output unique -> object} (None: something unresolvable)."""
    import torch
    owners = {next(iter(g.inputs())).unique(): module}
    objects = {}
    for node in list(g.nodes()):
        if node.kind() != "prim::GetAttr":
            continue
        owner = owners.get(node.input().unique())
        if owner is None:
            return None
        value = getattr(owner, node.s("name"))
        out = node.output()
        if isinstance(value, torch.jit.ScriptModule):
            owners[out.unique()] = value
            objects[out.unique()] = None
        elif isinstance(value, torch.ScriptObject):
            objects[out.unique()] = value
        elif value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
            if isinstance(value, torch.Tensor) and value.requires_grad:
                value = value.detach()   # a Parameter (quantized batch_norm2d's weight); freeze does the same
            const = g.insertConstant(value)
            const.node().moveBefore(node)
            out.replaceAllUsesWith(const)
        else:
            return None
    return objects


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
    def __init__(self, source, options, qf_names, services, objects=None):
        self.source = source
        self.services = services   # frontend.FrontendServices: shape inference, qparam rules
        self.objects = objects or {}   # GetAttr output -> module attribute (fast path: packed weights)
        self.options = options
        self.qf_names = qf_names
        self.values = {}       # torch Value.unique() -> Tensor or python constant
        self.graph = Graph(source=source)
        self.unsupported = []
        self.origin = {}       # id(Tensor) -> the torch Value it stands for

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
        self.services.infer_shapes(self.graph)
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
        if kind == "prim::If" and self._static_if(node):
            return
        if kind in ("prim::If", "prim::Loop"):
            self.unsupported.append((self.path(node), kind + " (control flow that depends on the data; "
                                                             "trace the model instead of scripting it)"))
            self._placeholders(node)
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
        except Exception as e:  # a known op used in a form its reader does not expect
            self.unsupported.append((self.path(node), "%s in an unexpected form (%s: %s)"
                                     % (kind, type(e).__name__, e)))
            self._placeholders(node)

    def _static_if(self, node):
        """A scripted ``if`` whose condition is known once shapes are (the input-rank checks in
        quantized modules' forward): walk the branch taken, as tracing would have recorded it."""
        cond = node.input()
        value = cond.toIValue() if cond.node().kind() == "prim::Constant" else self.values.get(cond.unique())
        if not isinstance(value, bool):
            return False
        block = list(node.blocks())[0 if value else 1]
        for inner in block.nodes():
            if inner.kind() == "prim::RaiseException":
                raise ConversionError("%s: %s: the model raises for these input shapes (%s)"
                                      % (self.source, self.path(node) or "<top>",
                                         node.sourceRange().strip().splitlines()[0] if node.sourceRange() else "prim::If"))
            self.visit(inner)
        for out, ret in zip(node.outputs(), block.returnNode().inputs()):
            self.values[out.unique()] = ret.toIValue() if ret.node().kind() == "prim::Constant" \
                else self.values.get(ret.unique())
        return True

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
        self.origin[id(out)] = node.output()
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
    w.values[node.output().unique()] = w.objects.get(node.output().unique())


@reader("aten::size")
def _size(w, node):
    ins = _inputs(node)
    t = w.tensor(ins[0], node)
    if t.shape is None:
        w.services.infer_shapes(w.graph)
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


def _weight_tensor(qw, name):
    """A torch qint8 weight -> int8 Tensor with its qparams (channel axis as torch has it)."""
    import torch
    ints = qw.int_repr().numpy()   # a fresh tensor: its memory is ours (one copy, below, to the IR dtype)
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
    return Tensor(name + ".weight", ints.shape, dtype, q, ints.astype(dtype, copy=False))


def _bias_tensor(b, name):
    if b is None:
        return None
    arr = b.detach().float().numpy().astype(np.float32).copy()
    return Tensor(name + ".bias", arr.shape, "float32", None, arr)


def _packed(w, node, unpack):
    """(packed params, int8 weight, float bias) of a quantized conv/linear node.

    ``unpack`` names the torch.ops.quantized unpack op; freezing made the packed params a constant.
    """
    import torch
    pp = w.const(_inputs(node)[1])
    if pp is None:
        raise _Unsupported("packed weights are not a constant (freeze failed to fold them)")
    qw, b = getattr(torch.ops.quantized, unpack)(pp)
    return pp, qw, b


@reader("quantized::conv2d", "quantized::conv2d_relu")
def _conv2d(w, node):
    x, _, s, z = _inputs(node)[:4]
    pp, qw, b = _packed(w, node, "conv2d_unpack")
    if pp.transpose():
        raise _Unsupported("transposed convolution")
    name = w.name_for(node)
    attrs = {"stride": list(pp.stride()), "padding": list(pp.padding()), "dilation": list(pp.dilation()),
             "groups": int(pp.groups()), "act": "relu" if node.kind().endswith("_relu") else None}
    w.emit("conv2d", node, [w.tensor(x, node), _weight_tensor(qw, name), _bias_tensor(b, name)],
           attrs, qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::linear", "quantized::linear_relu")
def _linear(w, node):
    x, _, s, z = _inputs(node)[:4]
    pp, qw, b = _packed(w, node, "linear_unpack")
    name = w.name_for(node)
    attrs = {"act": "relu" if node.kind().endswith("_relu") else None}
    w.emit("linear", node, [w.tensor(x, node), _weight_tensor(qw, name), _bias_tensor(b, name)],
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
    w.services.derive_qparams(w.graph.ops[-1])


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


@reader("aten::stack")
def _stack(w, node):
    """torch.stack of quantized tensors (PyTorch stacks one grid): an unsqueeze (reshape) of each
    input, then a cat along the new axis."""
    ins = _inputs(node)
    items = w.values.get(ins[0].unique())
    if not items or not all(isinstance(t, Tensor) for t in items):
        raise _Unsupported("stack of values that are not activations")
    shape = _known_shape(w, items[0])
    d = int(w.const(ins[1])) % (len(shape) + 1)
    new = list(shape[:d]) + [1] + list(shape[d:])
    name = w.name_for(node, "")
    parts = []
    for k, t in enumerate(items):
        part = Tensor("%s/unsqueeze%d" % (name, k), None, t.dtype, t.qparams.copy() if t.qparams is not None else None)
        w.graph.ops.append(Op("reshape", [t], [part], {"shape": new}, name=part.name))
        parts.append(part)
    q = items[0].qparams.copy() if items[0].qparams is not None else None
    w.emit("cat", node, parts, {"dim": d}, qparams=q, dtype=items[0].dtype)


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
    x = w.tensor(ins[0], node)
    dims = w.const(ins[1]) if len(ins) > 1 else None
    if not isinstance(dims, (list, tuple)):   # mean over every dim
        if x.shape is None:
            w.services.infer_shapes(w.graph)
        if x.shape is None:
            raise _Unsupported("mean over all dims of a tensor whose rank is unknown")
        dims = list(range(len(x.shape)))
    keep = bool(w.const(ins[2])) if len(ins) > 2 and isinstance(w.const(ins[2]), bool) else False
    w.emit("mean", node, [x], {"dims": list(dims), "keepdim": keep})


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


# ------------------------------------------------------- readers: activations, layout, resize, pad
def _fixed_qp(t, uint8_qp):
    """PyTorch's fixed output qparams of sigmoid/hardsigmoid/tanh: given for quint8; a qint8 input
    gets the same grid moved down by 128 (dtype_policy moves it back)."""
    s, z = uint8_qp
    return _qp(s, z - 128 if t.dtype == "int8" else z)


@reader("aten::hardsigmoid", "aten::hardsigmoid_")
def _hardsigmoid(w, node):
    x = w.tensor(_inputs(node)[0], node)
    w.emit("hardsigmoid", node, [x], qparams=_fixed_qp(x, (1.0 / 256.0, 0)))


@reader("aten::tanh", "aten::tanh_")
def _tanh(w, node):
    x = w.tensor(_inputs(node)[0], node)
    w.emit("tanh", node, [x], qparams=_fixed_qp(x, (2.0 / 256.0, 128)))


@reader("quantized::leaky_relu")
def _qleaky_relu(w, node):
    x, slope, _inplace, s, z = _inputs(node)
    w.emit("leaky_relu", node, [w.tensor(x, node)], {"negative_slope": float(w.const(slope))},
           qparams=_qp(w.const(s), w.const(z)))


@reader("aten::leaky_relu", "aten::leaky_relu_")
def _leaky_relu(w, node):
    ins = _inputs(node)
    slope = float(w.const(ins[1])) if len(ins) > 1 else 0.01
    w.emit("leaky_relu", node, [w.tensor(ins[0], node)], {"negative_slope": slope})


@reader("quantized::elu")
def _qelu(w, node):
    x, s, z, alpha, scale, in_scale = _inputs(node)
    w.emit("elu", node, [w.tensor(x, node)],
           {"alpha": float(w.const(alpha)), "scale": float(w.const(scale)), "input_scale": float(w.const(in_scale))},
           qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::softmax")
def _qsoftmax(w, node):
    x, dim, s, z = _inputs(node)
    w.emit("softmax", node, [w.tensor(x, node)], {"dim": int(w.const(dim))}, qparams=_qp(w.const(s), w.const(z)))


@reader("aten::clamp", "aten::clamp_", "aten::clamp_min", "aten::clamp_min_", "aten::clamp_max", "aten::clamp_max_")
def _clamp(w, node):
    """Quantized clamp keeps the input's grid: a hardtanh with open ends where a bound is None."""
    ins = _inputs(node)
    kind = node.kind().split("::")[1].rstrip("_")
    lo = hi = None
    if kind == "clamp":
        lo, hi = w.const(ins[1]), w.const(ins[2])
    elif kind == "clamp_min":
        lo = w.const(ins[1])
    else:
        hi = w.const(ins[1])
    for v in (lo, hi):
        if v is not None and not isinstance(v, (int, float)):
            raise _Unsupported("clamp bounds that are tensors")
    w.emit("hardtanh", node, [w.tensor(ins[0], node)],
           {"min": float("-inf") if lo is None else float(lo), "max": float("inf") if hi is None else float(hi)})


@reader("quantized::batch_norm2d", "quantized::batch_norm2d_relu")
def _batch_norm2d(w, node):
    x, weight, bias, mean, var, eps, s, z = _inputs(node)
    name = w.name_for(node)
    xt = w.tensor(x, node)

    def vec(v, what, default):
        t = w.const(v)
        if t is None:
            if default is None:
                raise _Unsupported("batch_norm2d %s is not a constant" % what)
            return None
        arr = t.detach().float().numpy().astype(np.float32).copy()
        return Tensor("%s.%s" % (name, what), arr.shape, "float32", None, arr)

    consts = [vec(weight, "weight", 1), vec(bias, "bias", 1), vec(mean, "running_mean", None),
              vec(var, "running_var", None)]
    c = consts[2].shape[0]
    if consts[0] is None:
        consts[0] = Tensor(name + ".weight", (c,), "float32", None, np.ones(c, np.float32))
    if consts[1] is None:
        consts[1] = Tensor(name + ".bias", (c,), "float32", None, np.zeros(c, np.float32))
    w.emit("batch_norm2d", node, [xt] + consts,
           {"eps": float(w.const(eps)), "act": "relu" if node.kind().endswith("_relu") else None},
           qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::conv_transpose2d")
def _conv_transpose2d(w, node):
    x, _, s, z = _inputs(node)[:4]
    pp, qw, b = _packed(w, node, "conv_transpose2d_unpack")
    name = w.name_for(node)
    attrs = {"stride": list(pp.stride()), "padding": list(pp.padding()), "dilation": list(pp.dilation()),
             "output_padding": list(pp.output_padding()), "groups": int(pp.groups()), "act": None}
    w.emit("conv_transpose2d", node,
           [w.tensor(x, node), _weight_tensor(qw, name), _bias_tensor(b, name)],
           attrs, qparams=_qp(w.const(s), w.const(z)))


@reader("quantized::conv1d", "quantized::conv1d_relu")
def _conv1d(w, node):
    """PyTorch packs a conv1d as a conv2d over a map of height 1: the weight unpacks as
    [O, I/g, 1, k] and stride/padding/dilation come as [1, s], [0, p], [1, d]."""
    x, _, s, z = _inputs(node)[:4]
    pp, qw, b = _packed(w, node, "conv2d_unpack")
    if qw.dim() != 4 or qw.shape[2] != 1:
        raise _Unsupported("conv1d weight of shape %s" % list(qw.shape))
    name = w.name_for(node)
    attrs = {"stride": list(pp.stride()), "padding": list(pp.padding()), "dilation": list(pp.dilation()),
             "groups": int(pp.groups()), "act": "relu" if node.kind().endswith("_relu") else None}
    w.emit("conv1d", node, [w.tensor(x, node), _weight_tensor(qw, name), _bias_tensor(b, name)],
           attrs, qparams=_qp(w.const(s), w.const(z)))


def _known_shape(w, t):
    if t.shape is None:
        w.services.infer_shapes(w.graph)
    if t.shape is None:
        raise _Unsupported("the input shape is unknown: give --input_shapes")
    return list(t.shape)


@reader("aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::_upsample_nearest_exact2d")
def _upsample(w, node):
    """F.interpolate on a quantized tensor (the output keeps the input's grid).

    ``size`` is what PyTorch computes (floor(in * scale) when only scale factors are given);
    ``scales`` keeps the scale factors because PyTorch then maps output to input pixels with
    1/scale rather than in/out (ops/resize.py checks that both agree)."""
    ins = _inputs(node)
    x = w.tensor(ins[0], node)
    kind = node.kind()
    mode = "bilinear" if "bilinear" in kind else ("nearest_exact" if "exact" in kind else "nearest")
    schema = str(node.schema())
    align = False
    rest = ins[1:]
    if mode == "bilinear":
        align = bool(w.const(ins[2]))
        rest = [ins[1]] + ins[3:]
    size = w.const(rest[0])
    if ".vec" in schema or "float[]? scale_factors" in schema:
        scales = w.const(rest[1]) if len(rest) > 1 else None
    else:   # (output_size, scales_h, scales_w)
        sh = w.const(rest[1]) if len(rest) > 1 else None
        sw = w.const(rest[2]) if len(rest) > 2 else None
        scales = None if sh is None and sw is None else [sh, sw]
    if size is None and scales is None:
        raise _Unsupported("interpolate without a constant size or scale factor")
    if size is not None:
        size = [int(v) for v in size]
    if scales is not None:
        scales = [None if v is None else float(v) for v in scales]
    w.emit("upsample", node, [x], {"mode": mode, "size": size, "scales": scales, "align_corners": align})


@reader("aten::pad", "aten::constant_pad_nd")
def _pad(w, node):
    ins = _inputs(node)
    pads = [int(v) for v in w.const(ins[1])]
    if node.kind() == "aten::pad":
        mode = w.const(ins[2])
        if mode != "constant":
            raise _Unsupported("%s padding (only constant padding has a quantized circle form here)" % mode)
        value = w.const(ins[3]) if len(ins) > 3 else None
    else:
        value = w.const(ins[2])
    w.emit("constant_pad", node, [w.tensor(ins[0], node)],
           {"pad": pads, "value": 0.0 if value is None else float(value)})


@reader("aten::permute")
def _permute(w, node):
    x, dims = _inputs(node)
    w.emit("permute", node, [w.tensor(x, node)], {"dims": [int(d) for d in w.const(dims)]})


@reader("aten::transpose", "aten::transpose_", "aten::swapaxes", "aten::swapdims")
def _transpose(w, node):
    x, d0, d1 = _inputs(node)
    xt = w.tensor(x, node)
    rank = len(_known_shape(w, xt))
    dims = list(range(rank))
    a, b = int(w.const(d0)) % rank, int(w.const(d1)) % rank
    dims[a], dims[b] = dims[b], dims[a]
    w.emit("permute", node, [xt], {"dims": dims})


@reader("aten::squeeze", "aten::squeeze_", "aten::unsqueeze", "aten::unsqueeze_")
def _squeeze(w, node):
    """squeeze/unsqueeze move no element: a reshape to the shape PyTorch computes."""
    ins = _inputs(node)
    xt = w.tensor(ins[0], node)
    shape = _known_shape(w, xt)
    if "unsqueeze" in node.kind():
        d = int(w.const(ins[1]))
        d = d % (len(shape) + 1)
        new = shape[:d] + [1] + shape[d:]
    else:
        dims = w.const(ins[1]) if len(ins) > 1 else None
        if dims is None:
            dims = [i for i, s in enumerate(shape) if s == 1]
        elif isinstance(dims, int):
            dims = [dims]
        dims = set(int(d) % len(shape) for d in dims)
        new = [s for i, s in enumerate(shape) if not (i in dims and s == 1)]
    w.emit("reshape", node, [xt], {"shape": new})


@reader("aten::chunk", "aten::unsafe_chunk", "aten::split", "aten::unsafe_split", "aten::split_with_sizes",
        "aten::unsafe_split_with_sizes")
def _split(w, node):
    """chunk/split: one ``split`` op with one output per piece; the pieces are views, so they keep
    the input's qparams."""
    x, arg, dim = _inputs(node)[:3]
    xt = w.tensor(x, node)
    shape = _known_shape(w, xt)
    d = int(w.const(dim)) % len(shape)
    n = shape[d]
    a = w.const(arg)
    if "chunk" in node.kind():
        step = -(-n // int(a))
        sizes = [min(step, n - i) for i in range(0, n, step)]
    elif isinstance(a, int):
        sizes = [min(a, n - i) for i in range(0, n, a)]
    else:
        sizes = [int(v) for v in a]
    if sum(sizes) != n or any(s <= 0 for s in sizes):
        raise _Unsupported("split sizes %s do not cover %d elements" % (sizes, n))
    name = w.name_for(node)
    outs = [Tensor("%s:%d" % (name, i), None, xt.dtype, xt.qparams.copy() if xt.qparams is not None else None)
            for i in range(len(sizes))]
    w.graph.ops.append(Op("split", [xt], outs, {"dim": d, "sizes": sizes}, name=name))
    w.values[node.output().unique()] = outs


def _number(v):
    """A traced size computation holds its constants as 0-d tensors (``tensor(2)``)."""
    if hasattr(v, "dim") and hasattr(v, "item") and v.dim() == 0 and not getattr(v, "is_quantized", False):
        return v.item()
    return v


_COMPARE = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
            "gt": lambda a, b: a > b, "le": lambda a, b: a <= b, "ge": lambda a, b: a >= b}


@reader("aten::eq", "aten::ne", "aten::lt", "aten::gt", "aten::le", "aten::ge")
def _compare(w, node):
    """Comparisons of sizes and constants (scripted modules check the input rank)."""
    ins = _inputs(node)
    a, b = w.const(ins[0]), w.const(ins[1])
    if isinstance(a, Tensor) or isinstance(b, Tensor) or a is None or b is None:
        raise _Unsupported("comparison of tensors (only of sizes and constants)")
    w.values[node.output().unique()] = bool(_COMPARE[node.kind().split("::")[1]](a, b))


@reader("aten::len", "aten::dim")
def _len(w, node):
    v = w.const(node.input()) if node.kind() == "aten::len" else None
    if node.kind() == "aten::dim":
        t = w.tensor(node.input(), node)
        if t.shape is None:
            w.services.infer_shapes(w.graph)
        v = list(t.shape) if t.shape is not None else None
    if not isinstance(v, (list, tuple, str)):
        raise _Unsupported("length of a value that is not known before running")
    w.values[node.output().unique()] = len(v)


@reader("aten::__not__")
def _not(w, node):
    v = w.const(node.input())
    if not isinstance(v, bool):
        raise _Unsupported("'not' of a value that is not known before running")
    w.values[node.output().unique()] = not v


@reader("aten::floor_divide", "aten::floordiv", "aten::div", "aten::mul", "aten::add", "aten::sub")
def _int_arith(w, node):
    """Arithmetic on sizes (``c // groups`` in a channel shuffle): traced graphs compute shapes
    from ``aten::size``; with known input shapes these fold to numbers."""
    ins = _inputs(node)
    if any(isinstance(w.values.get(v.unique()), Tensor) for v in ins[:2]):
        return _float_arith(w, node)
    a, b = _number(w.const(ins[0])), _number(w.const(ins[1]))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        raise _Unsupported("arithmetic on tensors (only on sizes)")
    kind = node.kind().split("::")[1]
    if kind in ("floor_divide", "floordiv"):
        r = a // b
    elif kind == "div":
        mode = w.const(ins[2]) if len(ins) > 2 else None
        r = a / b if mode is None else (a // b if mode == "floor" else int(a / b))
    elif kind == "mul":
        r = a * b
    else:
        alpha = w.const(ins[2]) if len(ins) > 2 else 1
        r = a + alpha * b if kind == "add" else a - alpha * b
    w.values[node.output().unique()] = r


@reader("quantized::linear_dynamic", "quantized::linear_relu_dynamic", "quantized::linear_dynamic_fp16",
        "aten::quantized_lstm", "aten::quantized_gru")
def _dynamic(w, node):
    raise _Unsupported("dynamic quantization: activations are quantized at run time and carry no "
                       "qparams, so there is no integer model to write; quantize statically "
                       "(eager/FX PTQ or QAT, or PT2E)")


def _const_array(v):
    """A Python number or a constant (frozen) float tensor as a float32 array, else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return np.array(v, np.float32)
    if hasattr(v, "is_quantized") and not v.is_quantized and hasattr(v, "detach"):
        return v.detach().cpu().numpy().astype(np.float32)
    return None


def _float_arith(w, node):
    """``x * c``, ``x + c``, ``(x - m) / s`` ... on a FLOAT activation and a constant (a number or
    a frozen tensor): the float preprocessing before the QuantStub (torchvision's transform_input
    of GoogLeNet / Inception-v3, user normalisation). Runs in float in circle as in PyTorch."""
    ins = _inputs(node)
    kind = node.kind().split("::")[1]
    if kind not in ("add", "sub", "mul", "div"):
        raise _Unsupported("%s on tensors" % kind)
    a, b = w.values.get(ins[0].unique()), w.values.get(ins[1].unique())
    reverse = not isinstance(a, Tensor)
    x, other = (b, ins[0]) if reverse else (a, ins[1])
    if isinstance(w.values.get(other.unique()), Tensor):
        raise _Unsupported("%s of two float tensors" % kind)
    if x.qparams is not None:
        raise _Unsupported("%s on a quantized tensor (use FloatFunctional / quantized ops)" % kind)
    c = _const_array(w.const(other))
    if c is None:
        raise _Unsupported("%s with an operand that is not a constant" % kind)
    if kind in ("add", "sub") and len(ins) > 2:
        alpha = w.const(ins[2])
        if alpha not in (None, 1):
            c = c * np.float32(alpha)   # x + alpha * c (PyTorch scales the other operand)
            if reverse:
                raise _Unsupported("%s with alpha on a reversed operand" % kind)
    if kind == "div" and len(ins) > 2 and w.const(ins[2]) is not None:
        raise _Unsupported("div with rounding_mode")
    ct = Tensor(w.name_for(node, "/const"), c.shape, "float32", None, c)
    w.emit("binary_const", node, [x, ct], {"op": kind, "reverse": reverse}, dtype="float32")


@reader("aten::select")
def _select(w, node):
    """``x[:, i]`` on a float tensor (transform_input): the piece i of a split, without that axis."""
    x, dim, index = _inputs(node)
    xt = w.tensor(x, node)
    shape = _known_shape(w, xt)
    d = int(w.const(dim)) % len(shape)
    n = shape[d]
    i = int(w.const(index)) % n
    piece = _slice_piece(w, node, xt, d, i, i + 1, "/slice")
    new = shape[:d] + shape[d + 1:]
    w.emit("reshape", node, [piece], {"shape": new})


@reader("aten::slice")
def _slice(w, node):
    """``x[a:b]`` with step 1: nothing for the whole axis (``x[:, 0]`` traces a full slice of dim
    0 first), else the piece of a split."""
    ins = _inputs(node)
    x, dim, start, end = ins[:4]
    step = w.const(ins[4]) if len(ins) > 4 else 1
    lst = w.const(x)
    if isinstance(lst, (list, tuple)):   # a list of sizes (``x.shape[-2:]`` in a scripted model)
        w.values[node.output().unique()] = list(lst)[slice(w.const(start), w.const(end), step)]
        return
    xt = w.tensor(x, node)
    shape = _known_shape(w, xt)
    d = int(w.const(dim)) % len(shape)
    n = shape[d]
    a, b = w.const(start), w.const(end)
    a = 0 if a is None else int(a)
    b = n if b is None else int(b)
    a, b = (a + n if a < 0 else a), (b + n if b < 0 else b)
    a, b = max(0, min(a, n)), max(0, min(b, n))
    if b <= a:
        raise _Unsupported("slice with an empty range")
    if step not in (None, 1):
        # every step-th element: a gather of those indices (the output keeps the grid)
        w.emit("gather", node, [xt], {"dim": d, "index": list(range(a, b, int(step)))})
        return
    if a == 0 and b == n:
        w.values[node.output().unique()] = xt
        return
    out = _slice_piece(w, node, xt, d, a, b, "")
    w.values[node.output().unique()] = out
    w.origin[id(out)] = node.output()


def _slice_piece(w, node, xt, d, a, b, suffix):
    n = _known_shape(w, xt)[d]
    sizes = [v for v in (a, b - a, n - b) if v > 0]
    which = 1 if a > 0 else 0
    name = w.name_for(node, suffix)
    outs = [Tensor("%s:%d" % (name, k), None, xt.dtype, xt.qparams.copy() if xt.qparams is not None else None)
            for k in range(len(sizes))]
    w.graph.ops.append(Op("split", [xt], outs, {"dim": d, "sizes": sizes}, name=name))
    return outs[which]
