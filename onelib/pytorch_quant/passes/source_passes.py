"""Passes over the source-stage graph (PyTorch op names, NCHW)."""
from ..errors import ConversionError
from ..ir import QParams

# ops that run in float in a partly quantized graph (PT2E leaves some ops float)
FLOAT_OK = {"quantize", "dequantize"}


def dtype_policy(graph, options):
    """int8 activations become uint8 by the exact +128 shift (luci and onert take U8, not S8).

    Same scale, zero point + 128, every code + 128: the real values do not change. Weights are
    converted where they are lowered (``ops.quant.model_weight``).
    """
    for t in graph.tensors():
        if t.is_const or t.qparams is None or t.dtype != "int8":
            continue
        t.qparams = QParams(t.qparams.scale, t.qparams.zero_point + 128, t.qparams.axis)
        t.dtype = "uint8"


def io_types(graph, options):
    """Model I/O keeps PyTorch's dtype unless --input_type / --output_type ask for the integers.

    A float input that only feeds a ``quantize`` (QuantStub) becomes that quantized tensor; a float
    output made by ``dequantize`` (DeQuantStub) becomes the tensor before it.
    """
    want_in, want_out = options.input_type, options.output_type
    if want_in != "float32":
        new_inputs = []
        for t in graph.inputs:
            users = [op for op in graph.ops if t in op.inputs]
            if t.dtype == want_in or t.dtype in ("int64", "int32"):   # integer ids stay as given
                new_inputs.append(t)
            elif len(users) == 1 and users[0].kind == "quantize" and users[0].outputs[0].dtype == want_in:
                q = users[0].outputs[0]
                graph.remove_ops(users)
                q.name = t.name
                new_inputs.append(q)
            else:
                raise ConversionError("%s: input '%s' is %s and is not quantized to %s by a single "
                                      "QuantStub/quantize; --input_type %s cannot apply"
                                      % (graph.source, t.name, t.dtype, want_in, want_in))
        graph.inputs = new_inputs
    if want_out != "float32":
        prod = graph.producers()
        new_outputs = []
        for t in graph.outputs:
            op = prod.get(id(t))
            if t.dtype == want_out:
                new_outputs.append(t)
            elif op is not None and op.kind == "dequantize" and op.inputs[0].dtype == want_out:
                new_outputs.append(op.inputs[0])
            else:
                raise ConversionError("%s: output '%s' is %s and does not come from a DeQuantStub/"
                                      "dequantize of %s; --output_type %s cannot apply"
                                      % (graph.source, t.name, t.dtype, want_out, want_out))
        graph.outputs = new_outputs
        graph.prune()


def check_quantized(graph, options):
    """Ops between dequantize and quantize run in float, as in PyTorch (FX float islands, PT2E
    ops a quantizer left alone). They are kept float in circle, never given invented qparams,
    and listed for the user; ``--strict`` refuses them. Ops with no float lowering are refused."""
    from ..errors import UnsupportedOpsError
    from ..ops.registry import FLOAT_CAPABLE
    float_ops = []
    for op in graph.ops:
        if op.kind in FLOAT_OK:
            continue
        acts = [t for t in op.inputs + op.outputs if t is not None and not t.is_const]
        if any(t.qparams is None for t in acts):
            float_ops.append(op)
    if not float_ops:
        return
    listed = ", ".join("%s (%s)" % (o.name, o.kind) for o in float_ops)
    if options.strict:
        raise ConversionError("%s: --strict: %d op(s) would stay float: %s" % (graph.source, len(float_ops), listed))
    bad = [(o.name, o.kind + " with float tensors") for o in float_ops if o.kind not in FLOAT_CAPABLE]
    if bad:
        raise UnsupportedOpsError(graph.source, bad)
    graph.notes.append("%d op(s) stay float between DEQUANTIZE and QUANTIZE, as PyTorch runs them: %s"
                       % (len(float_ops), listed))
