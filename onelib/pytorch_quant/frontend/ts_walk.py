"""The TorchScript walker: one pass over the graph's nodes, each handed to the reader registered
for its kind (``@reader``; the readers are in ts_ops.py and ts_ops_layout.py) or, for a kind in
the generic table api.py gives (``FrontendServices.generic_reads``), read without a reader of its
own. Values are tracked per torch ``Value``; a reader turns a node into one source op.
"""
import re

import numpy as np

from ..errors import ConversionError, UnsupportedOpsError
from ..ir import Graph, Op, QParams, Tensor

_QDTYPE = {13: "uint8", 12: "int8", 14: "int32"}

READERS = {}


def reader(*kinds):
    def deco(fn):
        for k in kinds:
            READERS[k] = fn
        return fn
    return deco


def _module_path(node):
    """'features.3(Seq).conv(Conv2d)' -> 'features.3.conv'"""
    try:
        h = node.getModuleHierarchy()
    except Exception:
        return ""
    return re.sub(r"\([^()]*\)", "", h or "")


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
    def __init__(self, source, options, qf_names, services, objects=None, paths=None):
        self.source = source
        self.paths = paths or {}  # output Value.unique() -> full module path (FX files: ts_fxpaths.py)
        self.services = services   # frontend.FrontendServices: shape inference, qparam rules
        self.objects = objects or {}   # GetAttr output -> module attribute (fast path: packed weights)
        self.options = options
        self.qf_names = qf_names
        self.values = {}       # torch Value.unique() -> Tensor or python constant
        self.graph = Graph(source=source)
        self.unsupported = []
        self.unknown = set()   # Value.unique() of what an unsupported op made (and all downstream)
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
        if self.paths:
            outs = list(node.outputs())
            if outs and outs[0].unique() in self.paths:
                return self.paths[outs[0].unique()]
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
        if fn is None and kind in self.services.generic_reads:
            fn = _read_generic
        if fn is None:
            self.unsupported.append((self.path(node), kind))
            self._placeholders(node)
            return
        if any(i.unique() in self.unknown for i in node.inputs()):
            # reads what an unsupported op made (already listed): its shape and values are unknown
            # because of that op, not for want of --input_shapes; say nothing more about it
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
            self.unknown.add(o.unique())

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


def _pair(v):
    if isinstance(v, int):
        return [v, v]
    v = list(v)
    return v * 2 if len(v) == 1 else v


def _known_shape(w, t):
    if t.shape is None:
        w.services.infer_shapes(w.graph)
    if t.shape is None:
        raise _Unsupported(shape_unknown(w, "the input shape is unknown"))
    return list(t.shape)


def shape_unknown(w, what):
    """Why a shape is missing: without --input_shapes, ask for them; with them, the shape could
    not be followed to this op (say so, not "give --input_shapes" again)."""
    if w.options.input_shapes:
        return "%s (shape inference does not reach this op)" % what
    return "%s: give --input_shapes" % what


def _number(v):
    """A traced size computation holds its constants as 0-d tensors (``tensor(2)``)."""
    if hasattr(v, "dim") and hasattr(v, "item") and v.dim() == 0 and not getattr(v, "is_quantized", False):
        return v.item()
    return v


_PLAIN = (bool, int, float, str, type(None))


def _read_generic(w, node):
    """A node of a kind in the generic table (``FrontendServices.generic_reads``: PyTorch name ->
    (IR kind, argument names)), read without a reader of its own: the arguments named there, in
    that order, that hold activations become the op's inputs, the constant ones its attrs under
    those names; the one output takes its qparams as any reader's (input 0's grid, or float on a
    float input), or what the kind's qparams rule derives."""
    kind, names = w.services.generic_reads[node.kind()]
    ins = _inputs(node)
    schema = _argument_names(node)
    if node.kind() in w.services.folds and _fold(w, node, kind, ins, schema):
        return
    tensors, attrs = [], {}
    for name in names:
        if name not in schema:
            raise _Unsupported("no argument '%s' in %s" % (name, node.schema()))
        i = schema.index(name)
        if i >= len(ins):
            continue
        v = ins[i]
        value = w.values.get(v.unique())
        if isinstance(value, Tensor):
            tensors.append(value)
            continue
        c = w.const(v)
        if not (isinstance(c, _PLAIN) or (isinstance(c, (list, tuple)) and all(isinstance(e, _PLAIN) for e in c))):
            raise _Unsupported("argument '%s' is neither an activation nor a constant number" % name)
        attrs[name] = list(c) if isinstance(c, (list, tuple)) else c
    if not tensors or len(list(node.outputs())) != 1:
        raise _Unsupported("read as %s: needs an activation argument and one output" % kind)
    w.emit(kind, node, tensors, attrs)
    w.services.derive_qparams(w.graph.ops[-1])


def _fold(w, node, kind, ins, schema):
    """A node of a kind that declares ``fold`` whose arguments are all constants (frozen tensors,
    numbers, sizes): evaluated now (``services.fold``, numpy) into a constant torch tensor, which
    readers take as any frozen constant (ViT's class token ``expand``). False otherwise."""
    import torch
    args = {}
    for name, v in zip(schema, ins):
        if isinstance(w.values.get(v.unique()), Tensor):
            return False
        c = w.const(v)
        if isinstance(c, torch.Tensor):
            if c.is_quantized:
                return False
            c = c.detach().cpu().numpy()
        args[name] = list(c) if isinstance(c, tuple) else c
    out = w.services.fold(node.kind(), kind, args, None, None, "%s: %s" % (w.source, w.path(node) or node.kind()))
    w.values[node.output().unique()] = torch.from_numpy(np.ascontiguousarray(out))
    return True


def _argument_names(node):
    """The names of ``node``'s arguments, in order, from its schema."""
    import torch
    return [a.name for a in torch._C.parse_schema(node.schema()).arguments]
