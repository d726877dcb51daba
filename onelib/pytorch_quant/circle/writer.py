"""circle-stage IR -> circle bytes. The only module that builds flatbuffers (verify.py reads them
through circle_schema's object API).

Each circle op kind's builtin code and options table are in ``vocab.OPS``; the op's ``attrs`` are
the option fields by their object-API names (``strideW``, ``fusedActivationFunction``). The graph
is read, never changed: repeated tensor names get their ``:1``, ``:2`` suffixes in the file only.
"""
import numpy as np

from ..errors import ConversionError
from .vocab import OPS

_TTYPE = {"float32": "FLOAT32", "uint8": "UINT8", "int8": "INT8", "int16": "INT16",
          "int32": "INT32", "int64": "INT64", "bool": "BOOL"}


def _schema():
    try:
        from circle_schema.v0_10 import circle as C
    except ImportError:
        raise ConversionError("the Python package circle-schema (0.10) is needed to write circle: "
                              "pip install circle-schema==0.10.1")
    return C


def unique_names(tensors):
    """circle tensor names must be unique and non-empty: the name each tensor is written under,
    in order, repeats suffixed with :1, :2 ... (the graph's own names are left as they are)."""
    used, out = {}, []
    for t in tensors:
        base = t.name or "tensor"
        if base in used:
            used[base] += 1
            name = "%s:%d" % (base, used[base])
            while name in used:
                used[base] += 1
                name = "%s:%d" % (base, used[base])
            used[name] = 0
        else:
            used[base] = 0
            name = base
        out.append(name)
    return out


def write_circle(graph, description="one-import-pytorch-quant"):
    """Serialise a circle-stage graph. Tensors are written in first-use order."""
    import flatbuffers
    C = _schema()
    from circle_schema.v0_10.circle.BuiltinOptions import BuiltinOptions
    from circle_schema.v0_10.circle.TensorType import TensorType

    tensors = graph.tensors()
    names = unique_names(tensors)
    index = {id(t): i for i, t in enumerate(tensors)}
    buffers = [C.Buffer.BufferT()]  # buffer 0: the empty sentinel every reader expects
    tensor_ts = []
    data_bytes, overhead = 0, 4096
    for t, name in zip(tensors, names):
        overhead += 256 + 4 * len(name)
        tt = C.Tensor.TensorT()
        tt.name = name
        if t.shape is None:
            raise ConversionError("tensor %s has no shape" % name)
        tt.shape = [int(s) for s in t.shape]
        tt.type = getattr(TensorType, _TTYPE[t.dtype])
        buf = C.Buffer.BufferT()
        if t.data is not None:
            arr = np.ascontiguousarray(t.data, dtype=np.dtype(t.dtype).newbyteorder("<"))
            if tuple(arr.shape) != tuple(t.shape):
                raise ConversionError("tensor %s: data shape %s != %s" % (name, arr.shape, t.shape))
            # a view of the data's bytes: the builder copies them once (CreateNumpyVector)
            buf.data = arr.reshape(-1).view(np.uint8)
            data_bytes += arr.nbytes
        buffers.append(buf)
        tt.buffer = len(buffers) - 1
        if t.qparams is not None:
            q = C.QuantizationParameters.QuantizationParametersT()
            # numpy vectors: Pack writes them with one CreateNumpyVector call, not an element at a
            # time (same bytes: float32 and int64, little-endian, same alignment)
            q.scale = np.asarray(t.qparams.scale, dtype="<f4").reshape(-1)
            q.zeroPoint = np.asarray(t.qparams.zero_point, dtype="<i8").reshape(-1)
            overhead += 12 * q.scale.size
            q.quantizedDimension = int(t.qparams.axis) if not t.qparams.per_tensor else 0
            tt.quantization = q
        tensor_ts.append(tt)

    codes, op_ts = [], []
    for op in graph.ops:
        if op.kind not in OPS:
            raise ConversionError("internal: no circle writer entry for %s (%s)" % (op.kind, op.name))
        code, table = OPS[op.kind][:2]
        if code not in codes:
            codes.append(code)
        ot = C.Operator.OperatorT()
        ot.opcodeIndex = codes.index(code)
        ot.inputs = [index[id(t)] if t is not None else -1 for t in op.inputs]
        ot.outputs = [index[id(t)] for t in op.outputs]
        if table is not None:
            mod = getattr(C, table)
            opt = getattr(mod, table + "T")()
            for k, v in op.attrs.items():
                if not hasattr(opt, k):
                    raise ConversionError("internal: %s has no option %s" % (table, k))
                setattr(opt, k, v)
            ot.builtinOptionsType = getattr(BuiltinOptions, table)
            ot.builtinOptions = opt
        op_ts.append(ot)

    sg = C.SubGraph.SubGraphT()
    sg.tensors = tensor_ts
    sg.inputs = [index[id(t)] for t in graph.inputs]
    sg.outputs = [index[id(t)] for t in graph.outputs]
    sg.operators = op_ts
    sg.name = "main"

    model = C.Model.ModelT()
    model.version = 0
    model.description = description
    model.subgraphs = [sg]
    model.buffers = buffers
    model.operatorCodes = []
    for code in codes:
        oc = C.OperatorCode.OperatorCodeT()
        oc.builtinCode = code
        # ONE's readers take deprecated_builtin_code unless it is 127 (PLACEHOLDER_FOR_GREATER_OP_CODES);
        # leaving it 0 makes every op read back as ADD.
        oc.deprecatedBuiltinCode = code if code < 127 else 127
        oc.version = 1
        model.operatorCodes.append(oc)
    # sized for the whole model up front: growing doubles the buffer and copies it each time
    # (the bytes written do not depend on the initial size: the builder aligns from the end)
    fb = _builder_class(flatbuffers)(data_bytes + 16 * len(buffers) + overhead + 256 * len(op_ts))
    fb.Finish(model.Pack(fb), file_identifier=b"CIR0")
    return fb.output_bytes()


# numpy vectors at least this large are not copied into the builder (see _HoleBuilder)
_HOLE_BYTES = 1 << 16
_BUILDER = []


def _builder_class(flatbuffers):
    """A flatbuffers Builder that leaves a hole where a large numpy vector goes and fills the holes
    only when it joins the output: weights are copied once (into the output), and the builder's
    memory is an anonymous mapping whose untouched holes take no RAM. The layout, hence every
    byte, is what ``Builder.CreateNumpyVector`` gives (same StartVector, same EndVector)."""
    if _BUILDER:
        return _BUILDER[0]
    import mmap

    class _HoleBuilder(flatbuffers.Builder):
        def __init__(self, size):
            flatbuffers.Builder.__init__(self, 0)
            size = max(int(size), 1024)
            self.Bytes = mmap.mmap(-1, size)   # zero pages until written, like bytearray(size)
            self.head = size
            self.holes = []                    # (offset from the end of the buffer, array)

        def CreateNumpyVector(self, x):
            if x.ndim != 1 or x.nbytes < _HOLE_BYTES or x.dtype.str[0] not in "<|" or \
                    not x.flags.c_contiguous:
                return flatbuffers.Builder.CreateNumpyVector(self, x)
            self.StartVector(x.itemsize, x.size, x.dtype.alignment)
            self.head = self.head - x.nbytes
            # the offset from the end stays valid if the buffer grows (it grows at the front)
            self.holes.append((len(self.Bytes) - self.head, x))
            self.vectorNumElems = x.size
            return self.EndVector()

        def output_bytes(self):
            end = len(self.Bytes)
            view = memoryview(self.Bytes)
            pieces, at = [], self.head
            for from_end, arr in sorted(self.holes, key=lambda h: -h[0]):
                start = end - from_end
                pieces.append(view[at:start])
                pieces.append(memoryview(arr).cast("B"))
                at = start + arr.nbytes
            pieces.append(view[at:end])
            out = b"".join(pieces)
            del pieces, view
            self.holes = []
            return out

    _BUILDER.append(_HoleBuilder)
    return _HoleBuilder
