"""onert's and luci-interpreter's known defects, each stated once: which circle form, which runtime,
what goes wrong, and where it was measured (docs/circle-runtimes.md: onert 0.1.0, TICO 0.3.0).

Three places use them, each through a view of its own graph (`ir_ops` for the converter's circle-stage
graph; verify maps its parsed circle file the same way):

- ``runtimes.onert_unreliable``: a caller that wants a trustworthy number runs TICO instead;
- ``passes.profiles.onert_hazards``: the warnings of a conversion with the luci profile;
- verify's ``onert_*`` rules: findings on a circle file.

Each hazard holds the sentence each of them prints (``says``), so the texts stay where the facts are.
Imports nothing from ops/, frontend/ or torch: a view is any object with ``kind``, ``inputs`` and
``outputs`` (tensors or None) whose tensors have ``dtype`` ("uint8", ...), ``const``, ``quantized``,
``uniform`` (one scale and zero point, stored once or repeated), ``rank`` and ``shape``.
"""

import collections

ONERT = "onert"
LUCI_INTERPRETER = "luci-interpreter"
QUANT_INT = ("uint8", "int8", "int16")
RELUS = ("RELU", "RELU6", "RELU_N1_TO_1")

# operand positions (input, weights) of the ops that carry weights
WEIGHTED = {"CONV_2D": (0, 1), "DEPTHWISE_CONV_2D": (0, 1), "FULLY_CONNECTED": (0, 1), "TRANSPOSE_CONV": (2, 1)}


class Hazard(collections.namedtuple("Hazard", "name runtimes form wrong source check says")):
    """``check(op_view)`` is True when the op has the form; ``says[user]`` is a %-template over
    ``op`` (name), ``kind`` and, for verify, ``scales`` and ``dtype``."""

    __slots__ = ()

    def text(self, user, **fields):
        return self.says[user] % fields


def _operand(op, i):
    return op.inputs[i] if i < len(op.inputs) else None


def _activations(op):
    return [t for t in op.inputs + op.outputs if t is not None and not t.const]


def _fc_weights(op):
    w = _operand(op, 1) if op.kind == "FULLY_CONNECTED" else None
    return w if w is not None and w.quantized else None


def _int16_activation(op):
    return any(t.dtype == "int16" for t in _activations(op))


def _per_channel_fc(op):
    w = _fc_weights(op)
    return w is not None and not w.uniform


def _int8_fc(op):
    w = _fc_weights(op)
    return w is not None and w.dtype == "int8"


def _mixed_weight(op):
    pos = WEIGHTED.get(op.kind)
    if pos is None:
        return False
    x, w = _operand(op, pos[0]), _operand(op, pos[1])
    return x is not None and w is not None and x.dtype == "uint8" and w.dtype == "int8"


def _quantize_to_int8(op):
    return op.kind == "QUANTIZE" and op.outputs[0].dtype == "int8"


def _standalone_relu(op):
    x = _operand(op, 0)
    return op.kind in RELUS and x is not None and x.dtype in QUANT_INT


def _slice_5d(op):
    x = _operand(op, 0)
    return op.kind == "SLICE" and x is not None and x.rank == 5


def _broadcast_5d(op):
    y = op.outputs[0] if op.outputs else None
    return (op.kind in ("ADD", "MUL") and y is not None and y.rank is not None and y.rank >= 5
            and any(t is not None and t.shape != y.shape for t in op.inputs))


def _quantized_out(kind):
    return lambda op: op.kind == kind and op.outputs[0].quantized


def _integer_quantize(op):
    x = _operand(op, 0)
    return op.kind == "QUANTIZE" and x is not None and x.quantized


INT16_KERNELS = Hazard(
    "int16_kernels", (ONERT,), "any op with an int16 activation", "refused: onert has no int16 kernels",
    "docs/circle-runtimes.md defect 6: int16 CONV_2D 'OperationValidator failed', int16 inputs refused",
    _int16_activation,
    {"runtimes": "%(op)s (%(kind)s): onert has no int16 kernels"})

PER_CHANNEL_FC = Hazard(
    "onert_per_channel_fc", (ONERT, LUCI_INTERPRETER),
    "FULLY_CONNECTED whose weights have more than one (scale, zero point)",
    "silently wrong: channel 0's scale and zero point are used for every channel",
    "docs/circle-runtimes.md defects 3-4 (uint8: up to 60 LSB; hybrid float input alike); "
    "tests/test_digits.py", _per_channel_fc,
    {"runtimes": "%(op)s: onert uses channel 0's scale for a per-channel uint8 FULLY_CONNECTED",
     "profile": "per-channel uint8 FULLY_CONNECTED: onert and luci-interpreter use channel 0's scale",
     "verify": "FULLY_CONNECTED weights have %(scales)d scales; onert uses channel 0's scale and "
               "zero point for every channel (silently wrong); convert with --profile onert"})

INT8_FC = Hazard(
    "int8_fc", (ONERT,), "FULLY_CONNECTED with quantized int8 weights",
    "refused: onert has no int8 FULLY_CONNECTED",
    "docs/circle-runtimes.md defect 6: 'FullyConnected: unsupported data type'", _int8_fc,
    {"runtimes": "%(op)s: onert has no int8 FULLY_CONNECTED"})

MIXED_WEIGHT_DTYPE = Hazard(
    "onert_mixed_weight_dtype", (ONERT,),
    "CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED or TRANSPOSE_CONV with uint8 activations and int8 "
    "weights (PyTorch's fbgemm layout left unshifted)",
    "silently wrong: onert reads the int8 bytes as uint8 (and luci rejects the model)",
    "docs/circle-runtimes.md defect 2: FC up to 240 LSB, CONV_2D / DEPTHWISE_CONV_2D up to 238",
    _mixed_weight,
    {"runtimes": "%(op)s: onert reads int8 weights beside uint8 activations as uint8",
     "verify": "INT8 weights with UINT8 activations: luci rejects it and onert reads the "
               "bytes as uint8 (silently wrong); shift to uint8 exactly (value + 128, "
               "zero_point + 128)"})

QUANTIZE_TO_INT8 = Hazard(
    "quantize_to_int8", (ONERT,), "QUANTIZE with an int8 output",
    "silently wrong: the result is clamped to [0, 255] and wraps",
    "docs/circle-runtimes.md defect 5: up to 252 LSB", _quantize_to_int8,
    {"runtimes": "%(op)s: onert's QUANTIZE to int8 clamps to [0, 255] and wraps"})

STANDALONE_RELU = Hazard(
    "onert_standalone_relu", (ONERT,), "RELU, RELU6 or RELU_N1_TO_1 on a quantized integer tensor",
    "refused: no kernel ('unsupported data type'); fuse it into the producer",
    "docs/circle-runtimes.md defect 6: 'ElementwiseActivationLayer(ReLU): unsupported data type'",
    _standalone_relu,
    {"runtimes": "%(op)s: onert has no standalone quantized %(kind)s",
     "verify": "standalone %(kind)s on %(dtype)s: onert has no kernel for it ('unsupported data type'); "
               "fuse it into the producer's fused_activation_function"})

SLICE_5D = Hazard(
    "slice_5d", (ONERT,), "SLICE of a 5-D tensor",
    "silently wrong (measured: 124 LSB, TICO exact)", "the op sweep's 5-D SLICE cases (tests/sweep.py)",
    _slice_5d,
    {"runtimes": "%(op)s: onert computes a 5-D SLICE wrongly (measured: 124 LSB, TICO exact)"})

BROADCAST_5D = Hazard(
    "broadcast_5d", (LUCI_INTERPRETER,), "ADD or MUL of rank 5 or more that broadcasts an operand",
    "crashes: luci-interpreter aborts (SIGABRT), float or uint8 alike (SUB, DIV, MAXIMUM run)",
    "tests/test_profiles.py (the onert profile computes it on views of rank 4 or less)",
    _broadcast_5d,
    {"profile": "ADD or MUL broadcasting at rank 5 or more: luci-interpreter aborts (SIGABRT)"})

QUANTIZED_HARD_SWISH = Hazard(
    "quantized_hard_swish", (ONERT, LUCI_INTERPRETER), "HARD_SWISH with a quantized output",
    "refused by onert; luci-interpreter runs it in float only",
    "tests/test_profiles.py (the onert profile computes it in float between DEQUANTIZE and QUANTIZE)",
    _quantized_out("HARD_SWISH"),
    {"profile": "quantized HARD_SWISH: onert has none, luci-interpreter runs it in float only"})

UINT8_MUL = Hazard(
    "uint8_mul", (LUCI_INTERPRETER,), "MUL with a quantized output",
    "refused: luci-interpreter has no uint8 MUL ('luci-intp Mul Unsupported type')",
    "passes/profiles.py FLOAT_ONLY_IN_LUCI_INTERPRETER (luci-interpreter's own message); "
    "tests/test_profiles.py", _quantized_out("MUL"),
    {"profile": "uint8 MUL: luci-interpreter has no uint8 MUL"})

INTEGER_QUANTIZE = Hazard(
    "integer_quantize", (ONERT,), "QUANTIZE from a quantized input (a requantize)",
    "refused: onert quantizes only from float",
    "stated with the luci profile's warnings when they were written; no measurement recorded here",
    _integer_quantize,
    {"profile": "integer-to-integer QUANTIZE: onert quantizes only from float"})

# what each user checks, in the order it checks them
ONERT_UNRELIABLE = (INT16_KERNELS, PER_CHANNEL_FC, INT8_FC, MIXED_WEIGHT_DTYPE, QUANTIZE_TO_INT8,
                    STANDALONE_RELU, SLICE_5D)
LUCI_PROFILE = (PER_CHANNEL_FC, QUANTIZED_HARD_SWISH, UINT8_MUL, INTEGER_QUANTIZE, BROADCAST_5D)
ALL = (INT16_KERNELS, PER_CHANNEL_FC, INT8_FC, MIXED_WEIGHT_DTYPE, QUANTIZE_TO_INT8, STANDALONE_RELU,
       SLICE_5D, QUANTIZED_HARD_SWISH, UINT8_MUL, INTEGER_QUANTIZE, BROADCAST_5D)


# ---------------------------------------------------------------------------- the IR's view
class _IRTensor:
    __slots__ = ("dtype", "const", "quantized", "uniform", "rank", "shape")

    def __init__(self, t):
        self.shape = tuple(t.shape) if t.shape is not None else None
        self.dtype = t.dtype
        self.const = t.is_const
        self.quantized = t.qparams is not None
        self.uniform = self.quantized and t.qparams.uniform
        self.rank = len(t.shape) if t.shape is not None else None


class _IROp:
    __slots__ = ("op", "kind", "inputs", "outputs")

    def __init__(self, op):
        self.op = op
        self.kind = op.kind
        self.inputs = [_IRTensor(t) if t is not None else None for t in op.inputs]
        self.outputs = [_IRTensor(t) if t is not None else None for t in op.outputs]


def ir_ops(graph):
    """Views of the ops of an ir.Graph at the circle stage (``.op`` is the op itself)."""
    return [_IROp(op) for op in graph.ops]


def onert_unreliable(graph):
    """Why onert cannot be trusted on this circle-stage ir.Graph (the first hazard met), or None."""
    for view in ir_ops(graph):
        for h in ONERT_UNRELIABLE:
            if h.check(view):
                return h.text("runtimes", op=view.op.name, kind=view.kind)
    return None


def luci_profile_hazards(graph):
    """What onert or luci-interpreter computes wrongly or cannot run in a circle-stage graph written
    with the luci profile: one line per hazard, with the first op's name."""
    found = collections.OrderedDict()
    for view in ir_ops(graph):
        for h in LUCI_PROFILE:
            if h.check(view):
                found.setdefault(h.says["profile"], view.op.name or view.op.outputs[0].name)
                break
    return ["%s (first: %s)" % (why, name) for why, name in found.items()]
