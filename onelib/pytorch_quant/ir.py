"""The one graph representation shared by every frontend, pass and the circle writer.

A graph lives in two stages with the same classes:

* source stage: op kinds are lower-case PyTorch names (``conv2d``, ``add``, ``quantize`` ...),
  4-D tensors are NCHW and shapes follow PyTorch. Frontends produce this.
* circle stage: op kinds are upper-case circle builtin names (``CONV_2D`` ...), 4-D activations
  are NHWC and constants hold the exact bytes to write. ``ops.lower`` produces this.

Nothing here knows torch or flatbuffers.
"""
from typing import Dict, List

import numpy as np

QUANT_INT_DTYPES = ("uint8", "int8", "int16")


class QParams(object):
    """scale/zero point of a quantized tensor; ``axis`` matters only when per-channel."""

    __slots__ = ("scale", "zero_point", "axis")

    def __init__(self, scale, zero_point, axis=0):
        self.scale = np.atleast_1d(np.asarray(scale, dtype=np.float32)).copy()
        self.zero_point = np.atleast_1d(np.asarray(zero_point, dtype=np.int64)).copy()
        if self.zero_point.size == 1 and self.scale.size > 1:
            self.zero_point = np.repeat(self.zero_point, self.scale.size)
        if self.scale.size != self.zero_point.size:
            raise ValueError("qparams: %d scales but %d zero points" % (self.scale.size, self.zero_point.size))
        self.axis = int(axis)

    @property
    def per_tensor(self):
        return self.scale.size == 1

    @property
    def uniform(self):
        """One scale and one zero point, stored once or repeated per channel (a runtime that reads
        only channel 0's, as onert's and luci-interpreter's FULLY_CONNECTED do, is then right)."""
        return bool(np.all(self.scale == self.scale[0]) and np.all(self.zero_point == self.zero_point[0]))

    def same_as(self, other):
        return (other is not None and self.scale.size == other.scale.size
                and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def copy(self, axis=None):
        return QParams(self.scale, self.zero_point, self.axis if axis is None else axis)

    def __repr__(self):
        if self.per_tensor:
            return "QParams(%.9g, %d)" % (self.scale[0], self.zero_point[0])
        return "QParams(%d channels, axis %d)" % (self.scale.size, self.axis)


class Tensor(object):
    """A value in the graph. ``data`` is set for constants (numpy, already in ``dtype``)."""

    def __init__(self, name, shape=None, dtype="float32", qparams=None, data=None):
        self.name = name
        self.shape = None if shape is None else tuple(int(s) for s in shape)
        self.dtype = dtype
        self.qparams = qparams
        self.data = data
        if data is not None:
            if self.shape is None:
                self.shape = tuple(data.shape)
            if data.dtype != np.dtype(dtype):
                raise ValueError("tensor %s: data is %s, declared %s" % (name, data.dtype, dtype))

    @property
    def is_const(self):
        return self.data is not None

    @property
    def is_quantized(self):
        return self.qparams is not None

    @property
    def rank(self):
        return len(self.shape)

    def __repr__(self):
        return "Tensor(%s, %s, %s%s%s)" % (self.name, self.shape, self.dtype,
                                            ", %r" % self.qparams if self.qparams else "",
                                            ", const" if self.is_const else "")


class Op(object):
    """An operation. ``name`` is where it came from (module path) for messages and tensor names."""

    def __init__(self, kind, inputs, outputs, attrs=None, name=""):
        self.kind = kind
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.attrs = dict(attrs or {})
        self.name = name

    def __repr__(self):
        return "Op(%s %s: %s -> %s)" % (self.kind, self.name,
                                        [t.name if t is not None else None for t in self.inputs],
                                        [t.name for t in self.outputs])


class Graph(object):
    def __init__(self, inputs=None, outputs=None, ops=None, source=""):
        self.inputs = list(inputs or [])     # type: List[Tensor]
        self.outputs = list(outputs or [])   # type: List[Tensor]
        self.ops = list(ops or [])           # type: List[Op]
        self.source = source                 # file name, for messages
        self.notes = []                      # type: List[str]  (what the user should hear about)

    # -- queries -----------------------------------------------------------------------------
    def producers(self):
        # type: () -> Dict[int, Op]
        return {id(t): op for op in self.ops for t in op.outputs}

    def consumers(self):
        # type: () -> Dict[int, List[Op]]
        use = {}  # type: Dict[int, List[Op]]
        for op in self.ops:
            for t in op.inputs:
                if t is not None:
                    use.setdefault(id(t), []).append(op)
        return use

    def tensors(self):
        """Every tensor once, in first-seen order (graph inputs first)."""
        seen, out = set(), []
        for t in self.inputs + [t for op in self.ops for t in op.inputs + op.outputs] + self.outputs:
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    # -- edits -------------------------------------------------------------------------------
    def replace_uses(self, old, new):
        """Every consumer (and graph output) of ``old`` reads ``new`` instead."""
        for op in self.ops:
            op.inputs = [new if t is old else t for t in op.inputs]
        self.outputs = [new if t is old else t for t in self.outputs]

    def remove_ops(self, dead):
        dead_ids = set(id(o) for o in dead)
        self.ops = [o for o in self.ops if id(o) not in dead_ids]

    def prune(self):
        """Drop ops whose outputs nobody reads (dead branches left by folding)."""
        live = set(id(t) for t in self.outputs)
        keep = []
        for op in reversed(self.ops):
            if any(id(t) in live for t in op.outputs):
                keep.append(op)
                live.update(id(t) for t in op.inputs if t is not None)
        self.ops = list(reversed(keep))


class SourceRecord(object):
    """What a frontend hands over besides the IR: the PyTorch side the fidelity report runs.

    The conversion never reads it. ``form`` is "torchscript" or "pt2".
    TorchScript: ``module`` (a callable running the graph the frontend read) and ``values``
    (id(source tensor) -> torch._C.Value). .pt2: ``nodes`` (id(source tensor) -> FX node name);
    ``dequantized`` ([(quantized tensor, FX dequantize node reading it)]) is what the .pt2 reader
    leaves for passes/qdq.py, which folds it into ``nodes``.
    """

    __slots__ = ("form", "module", "values", "nodes", "dequantized")

    def __init__(self, form, module=None, values=None, nodes=None, dequantized=None):
        self.form = form
        self.module = module
        self.values = values if values is not None else {}
        self.nodes = nodes if nodes is not None else {}
        self.dequantized = dequantized if dequantized is not None else []
