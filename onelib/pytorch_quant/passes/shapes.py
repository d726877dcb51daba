"""Shape inference and derived output qparams: passes over the source-stage graph that read the
op registry's tables (``registry.SHAPES``: kind -> fn(op) -> output shape; ``registry.QPARAMS``:
kind -> fn(op) -> QParams for kinds whose output grid follows from their inputs).

The frontends import nothing from here: api.py hands them these functions (``FrontendServices``)
for the few readers that need a shape while reading (``aten::size``, a squeeze, a split ...).
"""
from ..errors import ConversionError
from ..ops import registry


def derive_qparams(op):
    """Give ``op``'s output the qparams its kind derives from its inputs (nothing for other kinds)."""
    fn = registry.QPARAMS.get(op.kind)
    if fn is not None:
        op.outputs[0].qparams = fn(op)


def infer_shapes(graph):
    """Fill every op output's shape from its inputs (in graph order). Unknown inputs stop early."""
    shapes = registry.SHAPES
    for op in graph.ops:
        if any(t is not None and t.shape is None for t in op.inputs):
            return
        if op.outputs[0].shape is not None and op.kind not in shapes:
            continue
        fn = shapes.get(op.kind)
        if fn is None:
            raise ConversionError("internal: no shape rule for %s" % op.kind)
        try:
            out = fn(op)
        except ConversionError:
            raise
        except Exception as e:
            raise ConversionError("%s: %s (%s): cannot infer the output shape from inputs %s: %s"
                                  % (graph.source, op.name, op.kind,
                                     [t.shape for t in op.inputs if t is not None], e))
        if out and isinstance(out[0], (tuple, list)):   # multi-output ops (split) give one shape each
            for t, s in zip(op.outputs, out):
                t.shape = tuple(int(v) for v in s)
        else:
            op.outputs[0].shape = tuple(int(s) for s in out)
