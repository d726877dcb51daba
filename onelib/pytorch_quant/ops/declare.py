"""``@op``: the one declaration of a source op kind, written on its lowering function.

    @op("conv2d", shape=conv2d_shape, float_ok=True,
        reads={"torchscript": ("quantized::conv2d", ...), "pt2": ("aten.conv2d.default", ...)},
        inputs="x, weight, bias", attrs="stride[2], padding[2], ...",
        circle="CONV_2D ...", conditions="...", onert="yes")
    def lower_conv2d(ctx, op): ...

Everything about a kind is in that one record (``OpDecl``): its shape rule, its qparams rule
(optional), its lowering (the decorated function), whether it may run in float, whether it keeps
its input's grid, the PyTorch names each frontend reads into it, the generic reading (``args``),
what its inputs and attrs are, and its row in the README's op table. A lowering shared by several
kinds carries one ``@op`` per kind. ``registry.py`` collects the declarations of every op module;
this module imports no op module.
"""

FRONTENDS = ("torchscript", "pt2")

DECLARED = []   # every OpDecl in the order declared (registry.py orders them by module)


class OpDecl(object):
    """The facts of one source op kind (see the module docstring)."""

    __slots__ = ("kind", "shape", "qparams", "lower", "float_ok", "same_grid", "reads", "args", "inputs",
                 "attrs", "circle", "conditions", "onert", "seq", "fold", "fold_args")

    def __init__(self, kind, shape, qparams, lower, float_ok, same_grid, reads, args, inputs, attrs,
                 circle, conditions, onert, seq, fold=None, fold_args=None):
        self.kind, self.shape, self.qparams, self.lower = kind, shape, qparams, lower
        self.float_ok, self.same_grid, self.reads, self.args = float_ok, same_grid, reads, args
        self.inputs, self.attrs = inputs, attrs
        self.circle, self.conditions, self.onert = circle, conditions, onert
        self.seq = seq
        self.fold, self.fold_args = fold, fold_args

    @property
    def module(self):
        return self.lower.__module__

    def __repr__(self):
        return "OpDecl(%r)" % self.kind


def op(kind, shape, qparams=None, float_ok=False, same_grid=False, reads=None, args=None,
       inputs="x", attrs="-", circle="", conditions="", onert="yes", fold=None, fold_args=None):
    """Declare source op ``kind``, lowered by the decorated function ``fn(ctx, op)``.

    shape:      fn(op) -> output shape (a tuple; one tuple per output for multi-output kinds)
    qparams:    fn(op) -> QParams of the output, for kinds whose output grid follows from inputs
    float_ok:   the lowering also handles float tensors (kept float between DEQUANTIZE/QUANTIZE)
    same_grid:  circle's kernel (and PyTorch's) puts the output on the input's grid
    reads:      {frontend: (PyTorch names that frontend reads into this kind, ...)}
    args:       {frontend: (argument names, ...)}: read generically (``registry.generic_reads``)
    inputs, attrs: what the source op carries (IR documentation)
    circle, conditions, onert: the README row (what it becomes, when, whether onert runs it)
    fold:       fn(name, args, shape) -> numpy array: the op evaluated on constants (``name``: the
                PyTorch name read; ``args``: the node's arguments by schema name, constant tensors as
                numpy arrays; ``shape``: the output shape the program records). A node of a
                name in ``reads`` whose tensor arguments are all constants becomes a constant
                (passes/fold.py; the reader asks before reading)
    fold_args:  the tensor arguments ``fold`` reads (default: all); e.g. ``new_zeros`` reads none
    """
    reads = dict(reads or {})
    for fe in list(reads) + list(args or {}):
        assert fe in FRONTENDS, "%s: unknown frontend %s" % (kind, fe)

    def deco(fn):
        DECLARED.append(OpDecl(kind, shape, qparams, fn, bool(float_ok), bool(same_grid),
                               dict((fe, tuple(reads.get(fe, ()))) for fe in FRONTENDS), dict(args or {}),
                               inputs, attrs, circle, conditions, onert, len(DECLARED), fold,
                               None if fold_args is None else tuple(fold_args)))
        return fn
    return deco


def same_shape(op):
    """The shape rule of ops whose output has their first input's shape."""
    return op.inputs[0].shape
