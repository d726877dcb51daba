"""What a lowering works with: ``LowerCtx`` (source tensor -> circle tensor map, ``emit`` and the
layout helpers) and the NCHW/NHWC axis rules. Imports no op module (op modules import it).

Layout rule: every 4-D activation is NHWC inside the circle graph; every other rank keeps
PyTorch's order. A lowering that needs PyTorch's element order of a 4-D tensor (reshape,
flatten) asks ``ctx.nchw(t)`` for it, which inserts a TRANSPOSE.
"""
import numpy as np

from ..circle.vocab import check_op
from ..errors import ConversionError
from ..ir import Graph, Op, Tensor

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
        """Append circle op ``kind`` (a name in circle/vocab.py; ``attrs`` its option fields)."""
        problem = check_op(kind, attrs, name)
        if problem:
            raise ConversionError(problem)
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
