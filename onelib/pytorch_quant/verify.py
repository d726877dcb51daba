"""luci's rules for a pre-quantized U8 (or S16) circle model, as code.

ONE has no command that runs luci's `QuantizedModelVerifier` on a model that is already quantized
(it only runs at the end of circle-quantizer's own PTQ), so the converter checks its output here.
Each rule is one small function named after the rule and registered with `@rule(name, severity)`;
grep a rule's name to find it. Every finding names the rule, the operator and the tensor, so a
user can find the tensor in Netron.

Rules that describe an onert defect rather than a luci rule are named `onert_*`; with
`target="luci"` the ones that are only onert hazards are skipped.

Works on the bytes of a circle file; numpy and circle_schema are imported lazily and torch never.

    findings = verify_circle(open("m.circle", "rb").read())
    print(format_report(findings))
    if errors(findings): ...
"""

import argparse
import collections
import sys

ERROR = "error"
WARNING = "warning"
TARGETS = ("onert", "luci")


class Finding(collections.namedtuple("Finding", "rule severity op tensor message")):
    """One broken (or risky) fact. op: "#3 CONV_2D" or "" (model level); tensor: a tensor name or ""."""

    __slots__ = ()

    def __str__(self):
        where = [p for p in (self.op, "tensor '%s'" % self.tensor if self.tensor else "") if p]
        return "%s [%s] %s: %s" % (self.severity, self.rule, ", ".join(where) or "model", self.message)


Rule = collections.namedtuple("Rule", "name severity onert_only check luci_only")
RULES = collections.OrderedDict()


def rule(name, severity, onert_only=False, luci_only=False):
    """Register `check(model)`, a generator of `issue(...)`, as the rule `name`."""
    assert severity in (ERROR, WARNING)

    def register(check):
        assert name not in RULES, name
        RULES[name] = Rule(name, severity, onert_only, check, luci_only)
        return check

    return register


_Issue = collections.namedtuple("_Issue", "op tensor message severity")


def issue(op, tensor, message, severity=None):
    """What a rule yields: op (_Op or None), tensor (_Tensor or None), message, and an optional
    severity overriding the rule's own."""
    return _Issue(op, tensor, message, severity)


# --------------------------------------------------------------------------------------------
# A read-only view of the model that the rules share

# circle TensorType values (circle_schema.v0_10 TensorType); fixed by the schema
FLOAT32, FLOAT16, INT32, UINT8, INT64, STRING, BOOL, INT16 = 0, 1, 2, 3, 4, 5, 6, 7
INT8 = 9
QUANT_INT = (UINT8, INT8, INT16)  # integer types that carry a (scale, zero_point)
MODEL_Q = (UINT8, INT16)  # the only model dtypes luci's verifier accepts
BIAS_DTYPE = {UINT8: INT32, INT16: INT64}

_names_cache = {}


def _enum_names(module_name):
    """{value: NAME} for a circle_schema enum class."""
    if module_name not in _names_cache:
        import importlib

        mod = importlib.import_module("circle_schema.v0_10.circle." + module_name)
        cls = getattr(mod, module_name)
        _names_cache[module_name] = {v: k for k, v in vars(cls).items()
                                     if not k.startswith("_") and isinstance(v, int)}
    return _names_cache[module_name]


def dtype_name(dtype):
    return _enum_names("TensorType").get(dtype, "TensorType(%s)" % dtype)


def _builtin_name(code):
    return _enum_names("BuiltinOperator").get(code, "BUILTIN(%s)" % code)


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _ints(values):
    return [] if values is None else [int(v) for v in values]


def _floats(values):
    return [] if values is None else [float(v) for v in values]


class _Tensor:
    def __init__(self, graph, index, t, buffers):
        self.graph = graph
        self.index = index
        self.name = _text(t.name)
        self.dtype = int(t.type)
        self.shape = _ints(t.shape)
        q = t.quantization
        self.scale = _floats(q.scale) if q is not None else []
        self.zp = _ints(q.zeroPoint) if q is not None else []
        self.min = _floats(q.min) if q is not None else []
        self.max = _floats(q.max) if q is not None else []
        self.qdim = int(q.quantizedDimension) if q is not None else 0
        self.buffer = int(t.buffer)
        buf = buffers[self.buffer] if 0 < self.buffer < len(buffers) else None
        has_bytes = buf is not None and buf.data is not None and len(buf.data) > 0
        # offset > 1: the data lives after the flatbuffer (the >2 GB layout)
        self.const = bool(has_bytes or (buf is not None and int(getattr(buf, "offset", 0) or 0) > 1))
        self.producers = []
        self.consumers = []  # (op, operand index)

    @property
    def is_graph_input(self):
        return self.index in self.graph.input_ids

    @property
    def is_graph_output(self):
        return self.index in self.graph.output_ids

    @property
    def quantized(self):
        """Has a usable (scale, zero_point) pair, as luci would import it."""
        return bool(self.scale) and len(self.scale) == len(self.zp)

    @property
    def per_tensor(self):
        return len(self.scale) == 1 and len(self.zp) == 1

    def qparam_text(self):
        if len(self.scale) == 1 and len(self.zp) == 1:
            return "(scale %.9g, zp %d)" % (self.scale[0], self.zp[0])
        return "(scale %s, zp %s)" % (self.scale, self.zp)


class _Op:
    def __init__(self, graph, index, o, opcodes):
        self.graph = graph
        self.index = index
        self.opcode_index = int(o.opcodeIndex)
        oc = opcodes[self.opcode_index] if 0 <= self.opcode_index < len(opcodes) else None
        self.code = _intended_code(oc) if oc is not None else None
        self.name = _builtin_name(self.code) if oc is not None else "?"
        if oc is not None and self.name == "CUSTOM":
            self.name = "CUSTOM(%s)" % _text(oc.customCode)
        self.options = o.builtinOptions
        n = len(graph.tensors)
        self.input_ids = _ints(o.inputs)
        self.output_ids = _ints(o.outputs)
        self.inputs = [graph.tensors[i] if 0 <= i < n else None for i in self.input_ids]
        self.outputs = [graph.tensors[i] if 0 <= i < n else None for i in self.output_ids]

    @property
    def label(self):
        prefix = "subgraph %d " % self.graph.index if self.graph.index else ""
        return "%s#%d %s" % (prefix, self.index, self.name)

    def inp(self, i):
        """Operand i, or None when it is absent (-1, missing or out of range)."""
        return self.inputs[i] if i < len(self.inputs) else None

    def out(self, i=0):
        return self.outputs[i] if i < len(self.outputs) else None

    def tensors(self):
        return [t for t in self.inputs + self.outputs if t is not None]

    @property
    def fused_activation(self):
        return int(getattr(self.options, "fusedActivationFunction", 0) or 0)


def _intended_code(oc):
    """The op the writer meant: builtin_code, or for files written before that field existed
    (builtin_code 0), the deprecated byte. Whether ONE reads it the same way is
    `opcode_deprecated_builtin`'s business."""
    builtin = int(oc.builtinCode)
    return builtin if builtin != 0 else int(oc.deprecatedBuiltinCode)


class _Graph:
    def __init__(self, index, sg, buffers, opcodes):
        self.index = index
        self.name = _text(sg.name)
        self.tensors = [_Tensor(self, i, t, buffers) for i, t in enumerate(sg.tensors or [])]
        self.input_ids = _ints(sg.inputs)
        self.output_ids = _ints(sg.outputs)
        self.ops = [_Op(self, i, o, opcodes) for i, o in enumerate(sg.operators or [])]
        for op in self.ops:
            for t in op.outputs:
                if t is not None:
                    t.producers.append(op)
            for k, t in enumerate(op.inputs):
                if t is not None:
                    t.consumers.append((op, k))


class Model:
    """The parsed model plus what several rules need: the model dtype Q and per-op helpers."""

    def __init__(self, buf):
        from circle_schema.v0_10.circle.Model import ModelT

        self.identifier = bytes(buf[4:8])
        raw = ModelT.InitFromPackedBuf(buf, 0)   # reads bytes as they are: no copy of the weights
        self.raw = raw
        self.buffers = list(raw.buffers or [])
        self.opcodes = list(raw.operatorCodes or [])
        self.graphs = [_Graph(i, sg, self.buffers, self.opcodes) for i, sg in enumerate(raw.subgraphs or [])]
        self.q = self._model_q()

    def ops(self):
        for g in self.graphs:
            for op in g.ops:
                yield op

    def tensors(self):
        for g in self.graphs:
            for t in g.tensors:
                yield t

    def activations(self):
        """Non-constant tensors of a quantized-integer type."""
        return [t for t in self.tensors() if not t.const and t.dtype in QUANT_INT]

    def _model_q(self):
        counts = collections.Counter(t.dtype for t in self.activations() if t.dtype in MODEL_Q)
        if not counts:
            return None
        return UINT8 if counts[UINT8] >= counts[INT16] else INT16

    def op_q(self, op):
        """The Q an op is checked against: its own quantized output type (so U8/S16 mixed precision
        is checked layer by layer), otherwise the model's."""
        for t in op.outputs:
            if t is not None and t.dtype in MODEL_Q:
                return t.dtype
        return self.q


def _producer(t):
    return t.producers[0] if t is not None and t.producers else None


def _is_island(op):
    """An op that touches no quantized-integer tensor (a float island between DEQUANTIZE and
    QUANTIZE, or int32 shape arithmetic): not subject to the quantized rules."""
    return not any(t.dtype in QUANT_INT for t in op.tensors())


# Convolution-like ops: operand index of (activation input, weights, bias) and the channel axis
# luci quantizes the weights on (get_channel_dim_index: Conv/TConv/FC "O" = 0, DWConv "C" = 3).
_CONV_LIKE = {
    "CONV_2D": (0, 1, 2, 0),
    "DEPTHWISE_CONV_2D": (0, 1, 2, 3),
    "FULLY_CONNECTED": (0, 1, 2, 0),
    "TRANSPOSE_CONV": (2, 1, 3, 0),  # inputs: output_shape, filter, outBackprop, bias
}


def _conv_operands(op):
    """(input, weights, bias, channel_dim) of a conv-like op, or None for other ops."""
    spec = _CONV_LIKE.get(op.name)
    if spec is None:
        return None
    a, w, b, dim = spec
    return op.inp(a), op.inp(w), op.inp(b), dim


# --------------------------------------------------------------------------------------------
# dtype rules (luci VerifyQuantizedNodeType, one-conventions §5.3)

Q, S32, IDX, BOOLEAN, F32, QANY, F32_OR_QANY = "Q", "S32", "S32|S64", "BOOL", "F32", "U8|S16", "F32|U8|S16"

# ops whose inputs and outputs all have dtype Q ("group Q")
_GROUP_Q = {
    "ADD", "SUB", "MUL", "DIV", "POW", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE",
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "CONCATENATION", "PACK", "PRELU",
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "ELU", "HARD_SWISH", "GELU",
    "RSQRT", "SQRT", "ABS", "NEG", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "CEIL",
    "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "INSTANCE_NORM", "RMS_NORM", "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC", "TANH", "SOFTMAX", "LOG_SOFTMAX", "TILE",
}

# op: ([(operand index, role, kind)], output kind). Conv-like biases: see `bias_scale`.
_OPERANDS = {
    "CONV_2D": ([(0, "input", Q), (1, "filter", Q)], Q),
    "DEPTHWISE_CONV_2D": ([(0, "input", Q), (1, "filter", Q)], Q),
    "FULLY_CONNECTED": ([(0, "input", Q), (1, "weights", Q)], Q),
    "TRANSPOSE_CONV": ([(0, "output_shape", S32), (1, "filter", Q), (2, "outBackprop", Q)], Q),
    "MEAN": ([(0, "input", Q), (1, "reduction_indices", S32)], Q),
    "REDUCE_MAX": ([(0, "input", Q), (1, "reduction_indices", S32)], Q),
    "SUM": ([(0, "input", Q), (1, "reduction_indices", S32)], Q),
    "PAD": ([(0, "input", Q), (1, "paddings", S32)], Q),
    "MIRROR_PAD": ([(0, "input", Q), (1, "paddings", S32)], Q),
    "PADV2": ([(0, "input", Q), (1, "paddings", S32), (2, "constant_values", Q)], Q),
    "RESHAPE": ([(0, "input", Q), (1, "shape", S32)], Q),
    "TRANSPOSE": ([(0, "input", Q), (1, "perm", S32)], Q),
    "SLICE": ([(0, "input", Q), (1, "begin", IDX), (2, "size", IDX)], Q),
    "STRIDED_SLICE": ([(0, "input", Q), (1, "begin", IDX), (2, "end", IDX), (3, "strides", IDX)], Q),
    "SPLIT": ([(0, "axis", S32), (1, "input", Q)], Q),
    "SPLIT_V": ([(0, "input", Q), (1, "size_splits", IDX), (2, "axis", S32)], Q),
    "UNPACK": ([(0, "input", Q)], Q),
    "SQUEEZE": ([(0, "input", Q)], Q),
    "EXPAND_DIMS": ([(0, "input", Q), (1, "axis", IDX)], Q),
    "GATHER": ([(0, "params", Q), (1, "indices", IDX)], Q),
    "BATCH_TO_SPACE_ND": ([(0, "input", Q), (1, "block_shape", S32), (2, "crops", S32)], Q),
    "SPACE_TO_BATCH_ND": ([(0, "input", Q), (1, "block_shape", S32), (2, "paddings", S32)], Q),
    "RESIZE_BILINEAR": ([(0, "input", Q), (1, "size", S32)], Q),
    "RESIZE_NEAREST_NEIGHBOR": ([(0, "input", Q), (1, "size", S32)], Q),
    "ARG_MAX": ([(0, "input", Q), (1, "dimension", IDX)], IDX),
    "ARG_MIN": ([(0, "input", Q), (1, "dimension", IDX)], IDX),
    "GREATER": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "GREATER_EQUAL": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "LESS": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "LESS_EQUAL": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "EQUAL": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "NOT_EQUAL": ([(0, "x", Q), (1, "y", Q)], BOOLEAN),
    "ONE_HOT": ([(0, "indices", IDX), (1, "depth", S32), (2, "on_value", Q), (3, "off_value", Q)], Q),
    # the float I/O boundaries (and U8<->S16 requantization in mixed precision)
    "QUANTIZE": ([(0, "input", F32_OR_QANY)], QANY),
    "DEQUANTIZE": ([(0, "input", QANY)], F32),
}

# ops allowed to have float on one side and a quantized type on the other
_DTYPE_CHANGING = {"QUANTIZE", "DEQUANTIZE", "CAST"}


def _allowed(kind, q):
    return {
        Q: (q,), S32: (INT32,), IDX: (INT32, INT64), BOOLEAN: (BOOL,), F32: (FLOAT32,),
        QANY: MODEL_Q, F32_OR_QANY: (FLOAT32,) + MODEL_Q,
    }[kind]


def _expected_text(kind, q):
    return " or ".join(dtype_name(d) for d in _allowed(kind, q))


def _mixed_weight(op):
    """U8 activations with INT8 weights (PyTorch's fbgemm layout left unshifted)."""
    operands = _conv_operands(op)
    if operands is None:
        return False
    inp, w, _, _ = operands
    return inp is not None and w is not None and inp.dtype == UINT8 and w.dtype == INT8


@rule("model_dtype", ERROR)
def model_dtype(m):
    """The model dtype Q, from the activations: luci's verifier accepts only U8 and S16."""
    s8 = [t for t in m.activations() if t.dtype == INT8]
    if s8:
        yield issue(_producer(s8[0]), s8[0],
                    "INT8 activation (%d INT8 activations in all): luci supports only UINT8 and INT16 "
                    "models; shift int8 to uint8 exactly (value + 128, zero_point + 128)" % len(s8))
    elif m.q is None:
        yield issue(None, None, "no UINT8 or INT16 activation: this is not a quantized model")
    dtypes = set(t.dtype for t in m.activations() if t.dtype in MODEL_Q)
    if len(dtypes) > 1:
        other = INT16 if m.q == UINT8 else UINT8
        first = next(t for t in m.activations() if t.dtype == other)
        yield issue(_producer(first), first,
                    "mixed precision: the model is mostly %s but this activation is %s; luci allows it "
                    "only with QUANTIZE ops at the boundaries" % (dtype_name(m.q), dtype_name(other)),
                    WARNING)


@rule("activation_dtype", ERROR)
def activation_dtype(m):
    """Per-op dtype table (luci VerifyQuantizedNodeType): group ops are all Q; conv-like input and
    filter Q; index operands S32; only QUANTIZE/DEQUANTIZE/CAST change between float and quantized.
    Conv-like bias dtype is checked by `bias_scale`, INT8 weights under UINT8 activations by
    `onert_mixed_weight_dtype`."""
    if m.q is None:
        return  # model_dtype already said why
    for op in m.ops():
        if _is_island(op):
            continue
        q = m.op_q(op)
        if q is None:
            continue
        if op.name in _GROUP_Q:
            checks = [(k, "input %d" % k, Q) for k in range(len(op.inputs))]
            out_kind = Q
        elif op.name in _OPERANDS:
            checks, out_kind = _OPERANDS[op.name]
        elif op.name not in _DTYPE_CHANGING:
            floats = [t for t in op.tensors() if t.dtype == FLOAT32]
            if floats:
                yield issue(op, floats[0], "%s mixes FLOAT32 and quantized tensors; only QUANTIZE and "
                            "DEQUANTIZE may change between float and quantized" % op.name)
            continue
        else:
            continue
        for k, role, kind in checks:
            t = op.inp(k)
            if t is None:
                continue
            if _mixed_weight(op) and k == _CONV_LIKE[op.name][1]:
                continue
            if t.dtype not in _allowed(kind, q):
                yield issue(op, t, "%s %s is %s, expected %s"
                            % (op.name, role, dtype_name(t.dtype), _expected_text(kind, q)))
        for t in op.outputs:
            if t is not None and t.dtype not in _allowed(out_kind, q):
                yield issue(op, t, "%s output is %s, expected %s"
                            % (op.name, dtype_name(t.dtype), _expected_text(out_kind, q)))


# ops VerifyQuantizedNodeType has no rule for (luci @a9f3e58a): a float one passes luci-verify-quant
# (measured with ONE 1.27: float GATHER of an embedding table)
_NO_TYPE_RULE = {"GATHER"}


@rule("float_op", WARNING, luci_only=True)
def float_op(m):
    """luci's VerifyQuantizedNodeType checks every node of a quantized model: an op that reads or
    writes FLOAT32 activations (a float island between DEQUANTIZE and QUANTIZE, a layout TRANSPOSE
    before the input QUANTIZE) fails it, node by node, for the ops in its type table; QUANTIZE and
    DEQUANTIZE are not checked (luci's own --input_type/--output_type float32 form). A warning, for the luci target: the luci profile writes float only where
    PyTorch itself computed in float or no exact quantized form exists (each listed in the
    conversion notes, refused by --strict); the onert profile keeps float islands on purpose."""
    if m.q is None:
        return
    for op in m.ops():
        floats = [t for t in op.tensors() if t is not None and not t.const and t.dtype == FLOAT32]
        if not floats:
            continue
        if op.name in _DTYPE_CHANGING or op.name in _NO_TYPE_RULE or \
                (op.name not in _GROUP_Q and op.name not in _OPERANDS):
            continue   # luci checks neither QUANTIZE/DEQUANTIZE nor ops outside its type table
        yield issue(op, floats[0], "%s works on FLOAT32 in a quantized model; luci's verifier rejects "
                    "it (VerifyQuantizedNodeType)" % op.name)


# --------------------------------------------------------------------------------------------
# qparam shape rules (luci VerifyQuantizedNodeGranularity, CircleReader, §5.4, §5.8)

# ops whose constant operands are activations to luci too (must be per-tensor)
_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "POW", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE",
                "CONCATENATION", "PACK"}


@rule("per_tensor_activation", ERROR)
def per_tensor_activation(m):
    """Every activation has exactly one scale and one zero point (luci is_lwq)."""
    seen = set()
    for t in m.tensors():
        if not t.const and t.quantized and not t.per_tensor:
            seen.add(id(t))
            where = _producer(t) or (t.consumers[0][0] if t.consumers else None)
            yield issue(where, t, "activation has %d scales and %d zero points; luci needs exactly one "
                        "of each (per-tensor)" % (len(t.scale), len(t.zp)))
    for op in m.ops():
        if op.name in _ELEMENTWISE:
            for t in op.inputs:
                if t is not None and t.const and t.quantized and not t.per_tensor and id(t) not in seen:
                    seen.add(id(t))
                    yield issue(op, t, "constant operand of %s has %d scales; it is an activation to "
                                "luci and must be per-tensor" % (op.name, len(t.scale)))


@rule("qparam_complete", ERROR)
def qparam_complete(m):
    """Every quantized-integer tensor (and every int32/int64 bias) has both scale and zero_point of
    the same length; luci drops a quantization that has scale but no zero_point."""
    biases = set()
    for op in m.ops():
        operands = _conv_operands(op)
        if operands and operands[2] is not None:
            biases.add(id(operands[2]))
    for t in m.tensors():
        needs = t.dtype in QUANT_INT or (t.dtype in (INT32, INT64) and id(t) in biases)
        where = _producer(t) or (t.consumers[0][0] if t.consumers else None)
        kind = "%s%s tensor" % (dtype_name(t.dtype), " bias" if id(t) in biases else "")
        if not t.scale and not t.zp:
            if needs:
                yield issue(where, t, "%s has no quantization parameters (scale and zero_point)" % kind)
            continue
        if not t.zp:
            yield issue(where, t, "%s has a scale but no zero_point; luci drops its quantization" % kind)
            continue
        if not t.scale:
            yield issue(where, t, "%s has a zero_point but no scale" % kind)
            continue
        if len(t.scale) != len(t.zp):
            yield issue(where, t, "%s has %d scales but %d zero points" % (kind, len(t.scale), len(t.zp)))
            continue
        for name, values in (("min", t.min), ("max", t.max)):
            if values and len(values) != len(t.scale):
                yield issue(where, t, "%s has %d %s values for %d scales; leave min/max empty or make "
                            "them the same length" % (kind, len(values), name, len(t.scale)))
        bad = [s for s in t.scale if not (s > 0 and s < float("inf"))]
        if bad:
            yield issue(where, t, "%s has a scale that is not finite and positive: %r" % (kind, bad[0]))
        lo, hi = {UINT8: (0, 255), INT8: (-128, 127), INT16: (0, 0)}.get(t.dtype, (None, None))
        if lo is not None:
            out = [z for z in t.zp if not lo <= z <= hi]
            if out:
                rng = "0 (INT16 is symmetric in luci)" if t.dtype == INT16 else "in [%d, %d]" % (lo, hi)
                yield issue(where, t, "%s has zero_point %d; it must be %s" % (kind, out[0], rng))


@rule("channel_granularity", ERROR)
def channel_granularity(m):
    """Per-channel weights use luci's channel axis (0 for CONV_2D/TRANSPOSE_CONV/FULLY_CONNECTED,
    3 for DEPTHWISE_CONV_2D) with one (scale, zp) per channel; the bias has as many scales as the
    weights. PRELU alpha and INSTANCE_NORM gamma/beta are per-channel on the last axis."""
    for op in m.ops():
        operands = _conv_operands(op)
        if operands is not None:
            _, w, bias, dim = operands
            if w is None or not w.quantized:
                continue
            n = len(w.scale)
            if n > 1:
                if w.qdim != dim:
                    yield issue(op, w, "per-channel weights have quantized_dimension %d; luci needs %d for "
                                "%s" % (w.qdim, dim, op.name))
                elif len(w.shape) <= dim or w.shape[dim] != n:
                    yield issue(op, w, "%d scales but dimension %d of shape %s has %s channels"
                                % (n, dim, w.shape, w.shape[dim] if len(w.shape) > dim else "no"))
            if bias is not None and bias.quantized:
                nb = len(bias.scale)
                if nb != n:
                    yield issue(op, bias, "bias has %d scales but the weights have %d" % (nb, n))
                elif nb > 1 and (bias.qdim != len(bias.shape) - 1 or bias.shape[-1] != nb):
                    yield issue(op, bias, "per-channel bias needs quantized_dimension %d (its last axis) "
                                "of size %d; it has quantized_dimension %d and shape %s"
                                % (len(bias.shape) - 1, nb, bias.qdim, bias.shape))
        elif op.name in ("PRELU", "INSTANCE_NORM"):
            for k in ((1,) if op.name == "PRELU" else (1, 2)):
                t = op.inp(k)
                if t is None or not t.quantized or len(t.scale) == 1:
                    continue
                last = len(t.shape) - 1
                if t.qdim != last or not t.shape or t.shape[-1] != len(t.scale):
                    yield issue(op, t, "per-channel %s operand needs quantized_dimension %d (the last axis) "
                                "with %d channels; it has quantized_dimension %d and shape %s"
                                % (op.name, last, len(t.scale), t.qdim, t.shape))


def weight_granularity(m):
    """'layer', 'channel', or None (no quantized weights) when every weighted op agrees; else
    'mixed'. luci's QuantizedModelVerifier is run in one granularity for a whole model."""
    kinds = set()
    for op in m.ops():
        operands = _conv_operands(op)
        if operands is not None and operands[1] is not None and operands[1].quantized:
            kinds.add("layer" if len(operands[1].scale) == 1 else "channel")
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else None)


@rule("one_granularity", ERROR)
def one_granularity(m):
    """Every weight per-tensor (luci's layer granularity) or every weight per-channel (channel
    granularity): luci verifies a model in one mode, so a mix fails either way."""
    if weight_granularity(m) != "mixed":
        return
    per_channel = [op for op in m.ops() if _conv_operands(op) is not None and _conv_operands(op)[1] is not None
                   and _conv_operands(op)[1].quantized and len(_conv_operands(op)[1].scale) > 1]
    per_tensor = [op for op in m.ops() if _conv_operands(op) is not None and _conv_operands(op)[1] is not None
                  and _conv_operands(op)[1].quantized and len(_conv_operands(op)[1].scale) == 1]
    few = per_tensor if len(per_tensor) <= len(per_channel) else per_channel
    yield issue(few[0], _conv_operands(few[0])[1],
                "%d weight(s) are per-channel and %d per-tensor; luci verifies one granularity for the "
                "whole model (write per-tensor weights per-channel with repeated qparams)"
                % (len(per_channel), len(per_tensor)))


# --------------------------------------------------------------------------------------------
# bias, shared and fixed qparams (§5.5, §5.6, §5.3)

@rule("bias_scale", ERROR)
def bias_scale(m):
    """Conv-like bias: dtype S32 (U8 model) / S64 (S16), zero points 0, one consumer, and
    |bias_scale[i] - float32(input_scale) * float32(weight_scale[i])| < 1e-10, the product taken in
    float32 as luci computes it (VerifyQuantizedBiasScale)."""
    import numpy as np

    for op in m.ops():
        operands = _conv_operands(op)
        if operands is None or _is_island(op):
            continue
        inp, w, bias, _ = operands
        if bias is None or not bias.const:
            continue  # FULLY_CONNECTED may have no bias or a computed one
        q = m.op_q(op)
        want = BIAS_DTYPE.get(q)
        if want is not None and bias.dtype != want:
            yield issue(op, bias, "bias is %s; a %s model needs %s"
                        % (dtype_name(bias.dtype), dtype_name(q), dtype_name(want)))
        users = sorted(set(c.label for c, _ in bias.consumers))
        if len(users) > 1:
            yield issue(op, bias, "bias is shared by %d ops (%s); give each op its own bias tensor"
                        % (len(users), ", ".join(users)))
        if not bias.quantized:
            continue  # qparam_complete
        nonzero = [z for z in bias.zp if z != 0]
        if nonzero:
            yield issue(op, bias, "bias zero_point is %d; it must be 0" % nonzero[0])
        if inp is None or w is None or not inp.quantized or not w.quantized:
            continue
        if not inp.per_tensor or len(w.scale) != len(bias.scale):
            continue  # per_tensor_activation / channel_granularity
        expected = np.float32(inp.scale[0]) * np.asarray(w.scale, dtype=np.float32)  # float32, as luci
        stored = np.asarray(bias.scale, dtype=np.float32)
        diff = np.abs(stored.astype(np.float64) - expected.astype(np.float64))
        bad = np.nonzero(~(diff < 1e-10))[0]
        if bad.size:
            i = int(bad[0])
            yield issue(op, bias, "bias scale[%d] = %.9g but float32(input scale %.9g) * float32(weight "
                        "scale[%d] %.9g) = %.9g (|diff| %.3g >= 1e-10; %d of %d channels)"
                        % (i, stored[i], inp.scale[0], i, w.scale[i], expected[i], diff[i],
                           bad.size, stored.size))


# output qparams that must equal the input's: op -> operand index of the data input
_SHARED_QPARAMS = {"RESHAPE": 0, "TRANSPOSE": 0, "STRIDED_SLICE": 0, "SPLIT": 1, "SPLIT_V": 0,
                   "GATHER": 0, "SQUEEZE": 0, "UNPACK": 0}


@rule("shared_qparams", ERROR)
def shared_qparams(m):
    """RESHAPE, TRANSPOSE, STRIDED_SLICE, SPLIT/SPLIT_V/UNPACK outputs, GATHER and SQUEEZE move
    values without rescaling, so their outputs carry exactly the input's (scale, zero_point)."""
    import numpy as np

    for op in m.ops():
        k = _SHARED_QPARAMS.get(op.name)
        if k is None:
            continue
        src = op.inp(k)
        if src is None or src.dtype not in QUANT_INT or not src.quantized:
            continue
        for out in op.outputs:
            if out is None or out.dtype not in QUANT_INT or not out.quantized:
                continue
            same = (len(out.scale) == len(src.scale) and out.zp == src.zp
                    and np.array_equal(np.float32(out.scale), np.float32(src.scale)))
            if not same:
                yield issue(op, out, "%s output qparams %s differ from its input '%s' %s; they must be "
                            "identical" % (op.name, out.qparam_text(), src.name, src.qparam_text()))


def _fixed(q, op):
    """[(scale, zp), ...] accepted for op's output in a model of dtype q, or None."""
    name = op.name
    if q == UINT8:
        if name == "LOGISTIC":
            return [(1.0 / 256, 0)]
        if name == "TANH" or op.fused_activation == 4:  # ActivationFunctionType.TANH
            return [(2.0 / 256, 128)]
        if name == "SOFTMAX":
            return [(1.0 / 255, 0), (1.0 / 256, 0)]
    elif q == INT16:
        if name in ("LOGISTIC", "TANH") or op.fused_activation == 4:
            return [(1.0 / 32768, 0)]
        if name == "SOFTMAX":
            return [(1.0 / 32767, 0)]
    return None


@rule("fixed_qparams", ERROR)
def fixed_qparams(m):
    """U8 LOGISTIC (1/256, 0), TANH and fused TANH (2/256, 128), SOFTMAX (1/255, 0) for luci or
    (1/256, 0) as TFLite writes it (a warning); S16 LOGISTIC/TANH (1/32768, 0), SOFTMAX (1/32767, 0);
    FLOOR, FLOOR_DIV, FLOOR_MOD, CEIL an integer scale."""
    import numpy as np

    for op in m.ops():
        out = op.out(0)
        if out is None or out.dtype not in MODEL_Q or not out.quantized or not out.per_tensor:
            continue
        q = out.dtype
        s, z = np.float32(out.scale[0]), out.zp[0]
        if op.name in ("FLOOR", "FLOOR_DIV", "FLOOR_MOD", "CEIL"):
            if float(s) != round(float(s)):
                yield issue(op, out, "%s output scale %.9g must be an integer" % (op.name, s))
            continue
        accepted = _fixed(q, op)
        if accepted is None:
            continue
        matches = [(fs, fz) for fs, fz in accepted if s == np.float32(fs) and z == fz]
        what = op.name if op.name in ("LOGISTIC", "TANH", "SOFTMAX") else op.name + " with fused TANH"
        if not matches:
            want = " or ".join("(%s, %d)" % (_fraction(fs), fz) for fs, fz in accepted)
            yield issue(op, out, "%s %s output has %s; it must be %s"
                        % (dtype_name(q), what, out.qparam_text(), want))
        elif op.name == "SOFTMAX" and q == UINT8 and matches[0][0] == 1.0 / 256:
            yield issue(op, out, "UINT8 SOFTMAX output uses (1/256, 0), the TFLite convention that "
                        "onert accepts; luci's verifier wants (1/255, 0)", WARNING)


def _fraction(scale):
    for den in (255, 256, 32767, 32768):
        for num in (1, 2):
            if abs(scale - float(num) / den) < 1e-12:
                return "%d/%d" % (num, den)
    return "%.9g" % scale


# --------------------------------------------------------------------------------------------
# container rules (§6.2, §8.4)

@rule("opcode_deprecated_builtin", ERROR)
def opcode_deprecated_builtin(m):
    """OperatorCode.deprecated_builtin_code == min(builtin_code, 127) (negative circle codes too):
    ONE reads the deprecated byte unless it is 127, so leaving it 0 makes every op an ADD."""
    for i, oc in enumerate(m.opcodes):
        builtin, old = int(oc.builtinCode), int(oc.deprecatedBuiltinCode)
        if builtin == 0:
            continue  # ADD, or a file from before builtin_code existed: the byte is the code
        want = min(builtin, 127)
        if old != want:
            user = next((op for op in m.ops() if op.opcode_index == i), None)
            yield issue(user, user.out(0) if user is not None else None,
                        "operator_codes[%d] has builtin_code %d (%s) but deprecated_builtin_code %d; ONE "
                        "reads it as %s. Set deprecated_builtin_code = %d"
                        % (i, builtin, _builtin_name(builtin), old,
                           _builtin_name(old) if old != 127 else "builtin_code", want))


@rule("graph_io", ERROR)
def graph_io(m):
    """Container facts: identifier CIR0, buffer 0 empty, indices in range, graph outputs produced
    with a known dtype and shape, tensor names unique and non-empty (luci and --force_quantparam
    address tensors by name)."""
    if m.identifier != b"CIR0":
        yield issue(None, None, "file identifier is %r, expected b'CIR0'" % m.identifier)
    if m.buffers:
        b0 = m.buffers[0]
        if (b0.data is not None and len(b0.data) > 0) or int(getattr(b0, "offset", 0) or 0) > 1:
            yield issue(None, None, "buffer 0 must be the empty sentinel")
    else:
        yield issue(None, None, "the model has no buffers; buffer 0 must be the empty sentinel")
    if not m.graphs:
        yield issue(None, None, "the model has no subgraph")
    for g in m.graphs:
        n = len(g.tensors)
        for t in g.tensors:
            if not 0 <= t.buffer < max(len(m.buffers), 1):
                yield issue(_producer(t), t, "buffer index %d is out of range" % t.buffer)
        for op in g.ops:
            if op.code is None:
                yield issue(op, None, "opcode index %d is out of range" % op.opcode_index)
            for i in op.input_ids + op.output_ids:
                if not (i == -1 or 0 <= i < n):
                    yield issue(op, None, "tensor index %d is out of range" % i)
        for kind, ids in (("input", g.input_ids), ("output", g.output_ids)):
            for i in ids:
                if not 0 <= i < n:
                    yield issue(None, None, "graph %s index %d is out of range" % (kind, i))
        for i in g.output_ids:
            if not 0 <= i < n:
                continue
            t = g.tensors[i]
            if not t.producers and i not in g.input_ids and not t.const:
                yield issue(None, t, "graph output is not produced by any operator")
            if t.dtype not in _enum_names("TensorType"):
                yield issue(_producer(t), t, "graph output has unknown dtype %d" % t.dtype)
            if not t.shape:
                yield issue(_producer(t), t, "graph output has no shape (a scalar, or a shape that was "
                            "never set); luci::validate compares it with the producer", WARNING)
            elif any(d < 0 for d in t.shape):
                yield issue(_producer(t), t, "graph output shape %s has unknown dimensions" % t.shape)
        first = {}
        for t in g.tensors:
            if not t.name:
                yield issue(_producer(t), t, "tensor %d has no name" % t.index)
            elif t.name in first:
                yield issue(_producer(t), t, "tensor name '%s' is used by tensors %d and %d; names must be "
                            "unique" % (t.name, first[t.name], t.index))
            else:
                first[t.name] = t.index


# --------------------------------------------------------------------------------------------
# onert hazards (docs/circle-runtimes.md: defects measured on onert 0.1.0)

@rule("onert_mixed_weight_dtype", ERROR)
def onert_mixed_weight_dtype(m):
    """UINT8 activations with INT8 weights: luci rejects it (the filter must be Q) and onert reads
    the int8 bytes as uint8 and is silently wrong. An error for both targets."""
    for op in m.ops():
        if _mixed_weight(op):
            w = _conv_operands(op)[1]
            yield issue(op, w, "INT8 weights with UINT8 activations: luci rejects it and onert reads the "
                        "bytes as uint8 (silently wrong); shift to uint8 exactly (value + 128, "
                        "zero_point + 128)")


@rule("onert_per_channel_fc", WARNING, onert_only=True)
def onert_per_channel_fc(m):
    """onert's quantized (and hybrid) FULLY_CONNECTED uses only channel 0's scale and zero point."""
    for op in m.ops():
        if op.name != "FULLY_CONNECTED":
            continue
        inp, w = op.inp(0), op.inp(1)
        if inp is None or w is None or len(w.scale) <= 1:
            continue
        if len(set(w.scale)) == 1 and len(set(w.zp)) == 1:
            continue   # one scale repeated (one granularity per model): channel 0's is everyone's
        if inp.dtype in (UINT8, FLOAT32):
            yield issue(op, w, "FULLY_CONNECTED weights have %d scales; onert uses channel 0's scale and "
                        "zero point for every channel (silently wrong); convert with --profile onert"
                        % len(w.scale))


@rule("onert_standalone_relu", WARNING, onert_only=True)
def onert_standalone_relu(m):
    """onert has no quantized standalone RELU/RELU6/RELU_N1_TO_1 kernel; fuse it into the producer."""
    for op in m.ops():
        if op.name not in ("RELU", "RELU6", "RELU_N1_TO_1"):
            continue
        t = op.inp(0)
        if t is not None and t.dtype in QUANT_INT:
            yield issue(op, t, "standalone %s on %s: onert has no kernel for it ('unsupported data type'); "
                        "fuse it into the producer's fused_activation_function"
                        % (op.name, dtype_name(t.dtype)))


# --------------------------------------------------------------------------------------------
# entry points

def verify_circle(buf, *, target="onert"):
    """Run every rule on the circle bytes `buf`; returns a list of Finding (errors and warnings).
    target "onert" (default) adds the onert hazards; "luci" checks luci's rules only."""
    if target not in TARGETS:
        raise ValueError("target must be one of %s, not %r" % (", ".join(TARGETS), target))
    buf = bytes(buf)
    try:
        m = Model(buf)
    except Exception as e:  # a flatbuffer that does not parse: nothing else can be checked
        return [Finding("graph_io", ERROR, "", "", "cannot read the circle model (file identifier %r): "
                        "%s: %s" % (buf[4:8], type(e).__name__, e))]
    findings = []
    for r in RULES.values():
        if (r.onert_only and target != "onert") or (r.luci_only and target != "luci"):
            continue
        try:
            for it in r.check(m):
                findings.append(Finding(
                    r.name, it.severity or r.severity,
                    it.op.label if it.op is not None else "",
                    it.tensor.name if it.tensor is not None else "",
                    it.message))
        except Exception as e:  # a model malformed in a way no rule foresaw: report, keep going
            findings.append(Finding(r.name, ERROR, "", "", "the check itself failed on this model "
                                    "(malformed?): %s: %s" % (type(e).__name__, e)))
    return findings


def granularity_of(buf):
    """'layer', 'channel', 'mixed' or None for circle bytes (see ``weight_granularity``)."""
    try:
        return weight_granularity(Model(bytes(buf)))
    except Exception:
        return None


def verify_file(path, *, target="onert"):
    with open(path, "rb") as f:
        return verify_circle(f.read(), target=target)


def errors(findings):
    return [f for f in findings if f.severity == ERROR]


def warnings(findings):
    return [f for f in findings if f.severity == WARNING]


def format_report(findings):
    """One finding per line, errors first, then a summary line."""
    ordered = errors(findings) + warnings(findings)
    lines = [str(f) for f in ordered]
    lines.append("%d error(s), %d warning(s)" % (len(errors(findings)), len(warnings(findings))))
    return "\n".join(lines)


def main(argv=None):
    """`verify.py [--target onert|luci] FILE.circle`: prints the report; returns 1 on errors."""
    p = argparse.ArgumentParser(prog="one-import-pytorch-quant --verify_only",
                                description="Check a quantized circle model against luci's rules.")
    p.add_argument("model", help="the .circle file")
    p.add_argument("--target", choices=TARGETS, default="onert",
                   help="'onert' also reports onert's known defects (default); 'luci' only luci's rules")
    args = p.parse_args(argv)
    try:
        findings = verify_file(args.model, target=args.target)
    except OSError as e:
        print("verify: %s" % e, file=sys.stderr)
        return 1
    print(format_report(findings))
    return 1 if errors(findings) else 0


if __name__ == "__main__":
    sys.exit(main())
