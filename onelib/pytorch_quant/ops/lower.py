"""Source-stage graph -> circle-stage graph, one lowering function per source op (``registry``).

Layout rule: every 4-D activation is NHWC inside the circle graph; every other rank keeps
PyTorch's order. A lowering that needs PyTorch's element order of a 4-D tensor (reshape,
flatten) asks ``ctx.nchw(t)`` for it, which inserts a TRANSPOSE.
"""
import numpy as np

from ..errors import ConversionError, UnsupportedOpsError
from ..ir import Graph, Op, Tensor
from . import registry

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def nhwc_shape(shape):
    return tuple(shape[i] for i in NCHW_TO_NHWC) if len(shape) == 4 else tuple(shape)


def nhwc_axis(axis, rank):
    """A PyTorch axis of a rank-``rank`` tensor -> the circle axis (4-D tensors are NHWC)."""
    axis = axis % rank
    return NCHW_TO_NHWC.index(axis) if rank == 4 else axis


class LowerCtx(object):
    def __init__(self, graph, options):
        self.src = graph
        self.options = options
        self.out = Graph(source=graph.source)
        self.map = {}   # id(source tensor) -> circle tensor (NHWC when 4-D)

    # -- tensors -----------------------------------------------------------------------------
    def value(self, t):
        try:
            return self.map[id(t)]
        except KeyError:
            raise ConversionError("internal: %s used before it is defined" % t.name)

    def define(self, src, circle_t):
        self.map[id(src)] = circle_t

    def like(self, src, name=None, shape=None, qparams="same", dtype=None):
        """A new circle activation for source tensor ``src`` (NHWC shape when 4-D)."""
        q = src.qparams if qparams == "same" else qparams
        return Tensor(name or src.name, nhwc_shape(src.shape) if shape is None else shape,
                      dtype or src.dtype, q.copy() if q is not None else None)

    def const(self, name, array, qparams=None):
        array = np.ascontiguousarray(array)
        return Tensor(name, array.shape, str(array.dtype), qparams, array)

    # -- ops ---------------------------------------------------------------------------------
    def emit(self, kind, inputs, outputs, attrs=None, name=""):
        op = Op(kind, inputs, outputs, attrs, name)
        self.out.ops.append(op)
        return op

    def transpose(self, t, perm, name):
        shape = tuple(t.shape[i] for i in perm)
        out = Tensor(name, shape, t.dtype, t.qparams.copy() if t.qparams is not None else None)
        self.emit("TRANSPOSE", [t, self.const(name + "/perm", np.array(perm, np.int32))], [out], {}, name)
        return out

    def nchw(self, src):
        """The circle value of source tensor ``src`` in PyTorch's element order."""
        t = self.value(src)
        if len(src.shape) != 4:
            return t
        return self.transpose(t, NHWC_TO_NCHW, src.name + "/nchw")

    def reshape(self, t, shape, name, out=None):
        shape = [int(s) for s in shape]
        if out is None:
            out = Tensor(name, shape, t.dtype, t.qparams.copy() if t.qparams is not None else None)
        self.emit("RESHAPE", [t, self.const(name + "/shape", np.array(shape, np.int32))], [out],
                  {"newShape": shape}, name)
        return out

    def from_nchw(self, src, t_nchw):
        """Define source tensor ``src`` from a circle tensor in PyTorch order (NCHW when 4-D)."""
        if len(src.shape) == 4:
            t_nchw = self.transpose(t_nchw, NCHW_TO_NHWC, src.name)
        self.define(src, t_nchw)


def lower_graph(graph, options, ctx=None):
    registry._load_all()
    missing = [(op.name, op.kind) for op in graph.ops if op.kind not in registry.LOWERINGS]
    if missing:
        raise UnsupportedOpsError(graph.source, missing)
    ctx = ctx or LowerCtx(graph, options)
    nhwc_io = options.io_layout == "nhwc"
    for t in graph.inputs:
        if len(t.shape) == 4 and not nhwc_io:
            ct = Tensor(t.name, t.shape, t.dtype, t.qparams.copy() if t.qparams is not None else None)
            ctx.out.inputs.append(ct)
            ctx.define(t, ctx.transpose(ct, NCHW_TO_NHWC, t.name + "/nhwc"))
        else:
            ct = ctx.like(t)
            ctx.out.inputs.append(ct)
            ctx.define(t, ct)
    for op in graph.ops:
        registry.LOWERINGS[op.kind](ctx, op)
    for t in graph.outputs:
        ct = ctx.value(t)
        if len(t.shape) == 4 and not nhwc_io:
            # the model's output keeps the PyTorch name; the NHWC tensor inside gets the suffix
            base = ct.name
            ct.name = base + "/nhwc"
            ct = ctx.transpose(ct, NHWC_TO_NCHW, base)
        if any(ct is i for i in ctx.out.inputs) or any(ct is o for o in ctx.out.outputs):
            # a graph output that is also an input (or repeated) needs its own tensor
            cp = Tensor(t.name + "/out", ct.shape, ct.dtype, ct.qparams.copy() if ct.qparams else None)
            ctx.reshape(ct, ct.shape, t.name + "/out", out=cp)
            ct = cp
        ctx.out.outputs.append(ct)
    ctx.out.notes = list(graph.notes)
    ctx.out.prune()
    return ctx.out
