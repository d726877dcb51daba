"""Source-stage graph -> circle-stage graph: each source op's lowering (from ``registry``) in
graph order, on one ``LowerCtx`` (ctx.py)."""
from ..errors import UnsupportedOpsError
from ..ir import Tensor
from . import registry
from .ctx import NCHW_TO_NHWC, NHWC_TO_NCHW, LowerCtx, nhwc_axis, nhwc_shape  # noqa: F401 (api.py: lower.LowerCtx)


def lower_graph(graph, options, ctx=None):
    missing = [(op.name, op.kind) for op in graph.ops if op.kind not in registry.LOWERINGS]
    if missing:
        raise UnsupportedOpsError(graph.source, missing)
    ctx = ctx or LowerCtx(graph, options)
    nhwc_io = options.io_layout == "nhwc"
    for t in graph.inputs:
        if len(t.shape) == 4 and not nhwc_io:
            ct = Tensor(t.name, t.shape, t.dtype, t.qparams.copy() if t.qparams is not None else None)
            ctx.out.inputs.append(ct)
            ctx.define(t, ctx.transpose(ct, NCHW_TO_NHWC, t.name + "/nhwc"))
        else:
            ct = ctx.like(t)
            ctx.out.inputs.append(ct)
            ctx.define(t, ct)
    for op in graph.ops:
        registry.LOWERINGS[op.kind](ctx, op)
    for t in graph.outputs:
        ct = ctx.value(t)
        if len(t.shape) == 4 and not nhwc_io:
            # the model's output keeps the PyTorch name; the NHWC tensor inside gets the suffix
            base = ct.name
            ct.name = base + "/nhwc"
            ct = ctx.transpose(ct, NHWC_TO_NCHW, base)
        if any(ct is i for i in ctx.out.inputs) or any(ct is o for o in ctx.out.outputs):
            # a graph output that is also an input (or repeated) needs its own tensor
            cp = Tensor(t.name + "/out", ct.shape, ct.dtype, ct.qparams.copy() if ct.qparams else None)
            ctx.reshape(ct, ct.shape, t.name + "/out", out=cp)
            ct = cp
        ctx.out.outputs.append(ct)
    ctx.out.notes = list(graph.notes)
    ctx.out.prune()
    return ctx.out
