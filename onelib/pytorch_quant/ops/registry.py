"""The op table: one entry per source op (PyTorch name), each with its shape rule and lowering.

Adding an op touches one place: a module under ``ops/`` that calls ``@shape("name")`` and
``@lowering("name")``. ``grep -rn '"conv2d"' onelib/`` finds everything about conv2d.
"""
SHAPES = {}      # source kind -> fn(op) -> output shape (tuple), given input shapes
LOWERINGS = {}   # source kind -> fn(ctx, op): emit circle ops
QPARAMS = {}     # source kind -> fn(op) -> QParams for ops whose output qparams follow from inputs

# source kinds whose lowering also works on float tensors (kept float between DEQUANTIZE/QUANTIZE)
FLOAT_CAPABLE = {"conv2d", "linear", "hardtanh", "reshape", "flatten", "cat", "max_pool2d", "avg_pool2d",
                 "adaptive_avg_pool2d", "adaptive_max_pool2d", "mean", "add", "mul", "sigmoid", "hardswish",
                 "hardsigmoid", "tanh", "leaky_relu", "elu", "softmax", "permute", "split", "gather",
                 "upsample", "constant_pad", "binary_const"}

# source kinds whose circle kernels need the output on the input's grid (PyTorch's quantized kernels too)
SAME_GRID = {"max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "flatten", "reshape",
             "hardtanh", "permute", "gather", "upsample"}


def _register(table, kinds):
    def deco(fn):
        for k in kinds:
            # a second rule for one kind would silently replace the first
            assert k not in table, "two rules for %s" % k
            table[k] = fn
        return fn
    return deco


def shape(*kinds):
    return _register(SHAPES, kinds)


def lowering(*kinds):
    return _register(LOWERINGS, kinds)


def qparams_rule(*kinds):
    return _register(QPARAMS, kinds)


def same_shape(op):
    """The shape rule of ops whose output has their first input's shape."""
    return op.inputs[0].shape


def _load_all():
    # importing the op modules fills the tables
    from . import conv, elementwise, pool, shape_ops  # noqa: F401
    from . import activation, conv_extra, layout, pad, resize  # noqa: F401
