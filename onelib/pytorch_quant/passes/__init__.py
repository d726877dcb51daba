"""Small named passes. Each takes a graph (and the options) and edits it in place.

Source stage (PyTorch names, NCHW): ``infer_shapes`` / ``derive_qparams`` (shapes.py, from the op
registry's rules), the .pt2 reader's Q/DQ folding (qdq.py), ``dtype_policy``, ``io_types``,
``check_quantized``.
Circle stage (circle names, NHWC): ``fuse_activation``, ``relu_as_min_max``, ``cancel_transposes``,
``dequantize_later`` / ``quantize_earlier`` (data movement on the integers), then the passes of the
chosen ``--profile`` (``profiles.PROFILE_PASSES``).
"""
from .circle_passes import cancel_transposes, fuse_activation
from .legalize import relu_as_min_max
from .profiles import PROFILE_PASSES, dequantize_later, quantize_earlier
from .shapes import infer_shapes
from .source_passes import check_quantized, dtype_policy, io_types

SOURCE_PASSES = (dtype_policy, io_types, check_quantized)
CIRCLE_PASSES = (fuse_activation, relu_as_min_max, cancel_transposes, dequantize_later, quantize_earlier,
                 cancel_transposes)


def run_source_passes(graph, options):
    for p in SOURCE_PASSES:
        p(graph, options)
        infer_shapes(graph)


def run_circle_passes(graph, options):
    for p in CIRCLE_PASSES + PROFILE_PASSES[options.profile]:
        p(graph, options)
    graph.prune()
