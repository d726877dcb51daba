"""The verifier's shared parts: findings, the rule registry (`@rule`) and a read-only view of a
parsed circle model. numpy and circle_schema are imported lazily; torch never."""

import collections

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
