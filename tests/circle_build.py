"""A small circle model builder for tests (circle_schema object API).

Tests build the exact models they need here instead of going through the converter, so a verifier
or runtime test does not depend on the writer it is meant to check.

    b = CircleBuilder()
    x = b.tensor("x", [1, 4], "uint8", scale=0.1, zero_point=128)
    w = b.tensor("w", [3, 4], data=w_u8, scale=0.02, zero_point=128)
    y = b.tensor("y", [1, 3], "uint8", scale=0.2, zero_point=120)
    b.op("FULLY_CONNECTED", [x, w, -1], [y], "FullyConnectedOptions")
    buf = b.finish([x], [y])

After building, `b.t("name")` returns the TensorT so a test can break one field before `finish`.
"""

import flatbuffers
import numpy as np

from circle_schema.v0_10 import circle as C
from circle_schema.v0_10.circle.BuiltinOperator import BuiltinOperator
from circle_schema.v0_10.circle.BuiltinOptions import BuiltinOptions
from circle_schema.v0_10.circle.Buffer import BufferT
from circle_schema.v0_10.circle.Model import ModelT
from circle_schema.v0_10.circle.Operator import OperatorT
from circle_schema.v0_10.circle.OperatorCode import OperatorCodeT
from circle_schema.v0_10.circle.QuantizationParameters import QuantizationParametersT
from circle_schema.v0_10.circle.SubGraph import SubGraphT
from circle_schema.v0_10.circle.Tensor import TensorT
from circle_schema.v0_10.circle.TensorType import TensorType

DTYPES = {
    "float32": TensorType.FLOAT32,
    "uint8": TensorType.UINT8,
    "int8": TensorType.INT8,
    "int16": TensorType.INT16,
    "int32": TensorType.INT32,
    "int64": TensorType.INT64,
    "bool": TensorType.BOOL,
}


def _builtin(code):
    return getattr(BuiltinOperator, code) if isinstance(code, str) else int(code)


class CircleBuilder:
    def __init__(self):
        self.tensors = []
        self.buffers = [BufferT()]  # buffer 0: the empty sentinel every circle file starts with
        self.opcodes = []
        self.operators = []

    def tensor(self, name, shape, dtype=None, data=None, scale=None, zero_point=None,
               quantized_dimension=0, min=None, max=None):
        """Add a tensor; returns its index.

        dtype: "uint8", "int32", ... (taken from `data` when omitted). scale: a number or a list;
        zero_point defaults to zeros of the same length; pass [] to leave it empty.
        """
        t = TensorT()
        t.name = name
        t.shape = [int(s) for s in shape]
        if data is not None:
            data = np.ascontiguousarray(data)
            assert tuple(data.shape) == tuple(t.shape), (name, data.shape, shape)
            if dtype is None:
                dtype = str(data.dtype)
            assert str(data.dtype) == dtype, (name, data.dtype, dtype)
            buf = BufferT()
            buf.data = np.frombuffer(data.tobytes(), dtype=np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0  # activations point at the empty sentinel
        t.type = DTYPES[dtype]
        if scale is not None:
            q = QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            if zero_point is None:
                zero_point = [0] * len(q.scale)
            q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)] if len(np.atleast_1d(zero_point)) else []
            q.quantizedDimension = int(quantized_dimension)
            if min is not None:
                q.min = [float(v) for v in np.atleast_1d(min)]
            if max is not None:
                q.max = [float(v) for v in np.atleast_1d(max)]
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def t(self, name):
        """The TensorT called `name` (for tests that break one field)."""
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def set_data(self, name, data, dtype=None):
        """Replace a constant tensor's bytes (and dtype)."""
        t = self.t(name)
        data = np.ascontiguousarray(data)
        buf = BufferT()
        buf.data = np.frombuffer(data.tobytes(), dtype=np.uint8)
        self.buffers.append(buf)
        t.buffer = len(self.buffers) - 1
        t.type = DTYPES[dtype or str(data.dtype)]

    def op(self, code, inputs, outputs, options=None, **fields):
        """Add an operator. options: the options table name ("Conv2DOptions"), fields its values."""
        code = _builtin(code)
        if code not in self.opcodes:
            self.opcodes.append(code)
        op = OperatorT()
        op.opcodeIndex = self.opcodes.index(code)
        op.inputs = [int(i) for i in inputs]
        op.outputs = [int(o) for o in outputs]
        if options is not None:
            obj = getattr(getattr(C, options), options + "T")()
            for k, v in fields.items():
                assert hasattr(obj, k), (options, k)
                setattr(obj, k, v)
            op.builtinOptionsType = getattr(BuiltinOptions, options)
            op.builtinOptions = obj
        else:
            assert not fields
        self.operators.append(op)
        return len(self.operators) - 1

    def finish(self, inputs, outputs, set_deprecated_builtin_code=True):
        sg = SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = [int(i) for i in inputs]
        sg.outputs = [int(o) for o in outputs]
        sg.operators = self.operators
        sg.name = "main"
        m = ModelT()
        m.version = 0
        m.description = "circle_build"
        m.subgraphs = [sg]
        m.buffers = self.buffers
        m.operatorCodes = []
        for code in self.opcodes:
            oc = OperatorCodeT()
            oc.builtinCode = code
            oc.version = 1
            # ONE reads deprecated_builtin_code unless it is 127 (PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.deprecatedBuiltinCode = min(code, 127) if set_deprecated_builtin_code else 0
            m.operatorCodes.append(oc)
        fb = flatbuffers.Builder(1024)
        fb.Finish(m.Pack(fb), file_identifier=b"CIR0")
        return bytes(fb.Output())
