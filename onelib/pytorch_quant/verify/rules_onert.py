"""onert hazards as verifier rules (`onert_*`): the defects stated in ``hazards``, read off the circle
file. `onert_mixed_weight_dtype` is an error for both targets (luci rejects the model too); the
others are warnings with target "onert" only."""

from .. import hazards
from .model import ERROR, FLOAT32, UINT8, WARNING, dtype_name, issue, rule


class _TensorView:
    """A verifier tensor as ``hazards`` reads it."""

    __slots__ = ("dtype", "const", "quantized", "uniform", "rank", "shape")

    def __init__(self, t):
        self.shape = tuple(t.shape)
        self.dtype = dtype_name(t.dtype).lower()
        self.const = t.const
        self.quantized = bool(t.scale)
        self.uniform = len(t.scale) <= 1 or (len(set(t.scale)) == 1 and len(set(t.zp)) == 1)
        self.rank = len(t.shape)


class _OpView:
    __slots__ = ("kind", "inputs", "outputs")

    def __init__(self, op):
        self.kind = op.name
        self.inputs = [_TensorView(t) if t is not None else None for t in op.inputs]
        self.outputs = [_TensorView(t) if t is not None else None for t in op.outputs]


def _hits(m, hazard):
    for op in m.ops():
        if hazard.check(_OpView(op)):
            yield op


# --------------------------------------------------------------------------------------------
# onert hazards (docs/circle-runtimes.md: defects measured on onert 0.1.0)

@rule("onert_mixed_weight_dtype", ERROR)
def onert_mixed_weight_dtype(m):
    """UINT8 activations with INT8 weights: luci rejects it (the filter must be Q) and onert reads
    the int8 bytes as uint8 and is silently wrong. An error for both targets."""
    h = hazards.MIXED_WEIGHT_DTYPE
    for op in _hits(m, h):
        yield issue(op, op.inp(hazards.WEIGHTED[op.name][1]), h.text("verify"))


@rule("onert_per_channel_fc", WARNING, onert_only=True)
def onert_per_channel_fc(m):
    """onert's quantized (and hybrid) FULLY_CONNECTED uses only channel 0's scale and zero point;
    an S16 or S8 one is another matter (luci's rules, or the runtimes' own refusals)."""
    h = hazards.PER_CHANNEL_FC
    for op in _hits(m, h):
        inp, w = op.inp(0), op.inp(1)
        if inp is not None and inp.dtype in (UINT8, FLOAT32):
            yield issue(op, w, h.text("verify", scales=len(w.scale)))


@rule("onert_standalone_relu", WARNING, onert_only=True)
def onert_standalone_relu(m):
    """onert has no quantized standalone RELU/RELU6/RELU_N1_TO_1 kernel; fuse it into the producer."""
    h = hazards.STANDALONE_RELU
    for op in _hits(m, h):
        t = op.inp(0)
        yield issue(op, t, h.text("verify", kind=op.name, dtype=dtype_name(t.dtype)))
