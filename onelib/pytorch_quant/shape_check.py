"""Checks of a source graph's shapes before lowering: a wrong ``--input_shapes`` (or a program
whose recorded shapes disagree with its weights) is an error naming the op, never a circle whose
tensors do not fit together.

``infer_shapes`` computes each op's output from its inputs; these checks add what the shape
rules take for granted: the input rank an op needs, the channels a conv's weight reads, and
that every dimension stays positive.
"""
from .errors import ConversionError

INT32 = 1 << 31


def check_input_shapes(graph, options):
    """More shapes than inputs is an error, as is a non-positive dimension."""
    shapes = getattr(options, "input_shapes", None) or []
    if len(shapes) > len(graph.inputs):
        raise ConversionError("%s: %d input shapes given (%s), but the model has %d input%s"
                              % (graph.source, len(shapes), ":".join(",".join(str(d) for d in s) for s in shapes),
                                 len(graph.inputs), "" if len(graph.inputs) == 1 else "s"))
    for s in shapes:
        if any(int(d) <= 0 or int(d) >= INT32 for d in s):
            raise ConversionError("%s: input shape %s has a dimension that is not in 1..%d"
                                  % (graph.source, ",".join(str(d) for d in s), INT32 - 1))


def _dims(shape):
    return ",".join(str(d) for d in shape)


def _need_rank(graph, op, x, rank, layout):
    if len(x.shape) != rank:
        raise ConversionError("%s: %s (%s) takes a rank-%d input [%s], but its input '%s' has shape [%s]"
                              "; check --input_shapes" % (graph.source, op.name, op.kind, rank, layout,
                                                          x.name, _dims(x.shape)))


def _need_channels(graph, op, x, axis, want):
    got = x.shape[axis]
    if got != want:
        raise ConversionError("%s: %s (%s) reads %d channels, but its input '%s' has shape [%s] (%d "
                              "channels); check --input_shapes" % (graph.source, op.name, op.kind, want,
                                                                  x.name, _dims(x.shape), got))


def _check_attrs(graph, op):
    """circle stores strides, paddings, axes and sizes as int32: larger ones are an error here,
    naming the op and the attribute, not an overflow in the writer."""
    for key, v in sorted(op.attrs.items()):
        items = v if isinstance(v, (list, tuple)) else [v]
        for x in items:
            if isinstance(x, bool) or not isinstance(x, int):
                continue
            if not -INT32 <= x < INT32:
                raise ConversionError("%s: %s (%s): attribute %s=%s is out of the int32 range circle stores"
                                      % (graph.source, op.name, op.kind, key, v))


def check_graph(graph):
    """After shape inference: every op's input fits its weights, every dimension is positive,
    every integer attribute fits circle's int32 fields."""
    for op in graph.ops:
        _check_attrs(graph, op)
        x = op.inputs[0] if op.inputs else None
        if x is None or x.shape is None:
            continue
        w = op.inputs[1] if len(op.inputs) > 1 else None
        if op.kind == "conv2d" and w is not None and w.shape is not None and len(w.shape) == 4:
            _need_rank(graph, op, x, 4, "N,C,H,W")
            _need_channels(graph, op, x, 1, int(w.shape[1]) * int(op.attrs.get("groups", 1)))
        elif op.kind == "conv1d" and w is not None and w.shape is not None:
            _need_rank(graph, op, x, 3, "N,C,L")
            _need_channels(graph, op, x, 1, int(w.shape[1]) * int(op.attrs.get("groups", 1)))
        elif op.kind == "batch_norm2d":
            _need_rank(graph, op, x, 4, "N,C,H,W")
        for t in op.outputs:
            if t is not None and t.shape is not None and any(int(d) >= INT32 for d in t.shape):
                raise ConversionError("%s: %s (%s) would give '%s' the shape [%s], beyond circle's int32 "
                                      "dimensions" % (graph.source, op.name, op.kind, t.name, _dims(t.shape)))
            if t is not None and t.shape is not None and any(int(d) <= 0 for d in t.shape):
                raise ConversionError("%s: %s (%s) would give '%s' the shape [%s]; the input is too small "
                                      "for it (check --input_shapes)" % (graph.source, op.name, op.kind,
                                                                         t.name, _dims(t.shape)))
