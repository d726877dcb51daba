"""Container rules: opcode bytes, buffer 0, indices, graph outputs, tensor names."""

from .model import (
    ERROR, WARNING, _builtin_name, _enum_names, _producer, issue, rule)


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
