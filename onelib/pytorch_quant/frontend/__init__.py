"""Frontends: one reader per input form, each producing source-stage IR (``ir.Graph``) and an
``ir.SourceRecord``, and nothing else. They import nothing from ``ops/`` or ``passes/``: what they
need of those while reading, api.py hands them as a ``FrontendServices``."""


class FrontendServices(object):
    """What a frontend may call while reading (dependency injection; api.py fills it).

    infer_shapes(graph):  fill op output shapes from inputs (readers of ``aten::size``, squeeze ...)
    derive_qparams(op):   give an op the output qparams its kind derives from its inputs
    generic_reads:        {PyTorch name: (IR kind, argument names)}: nodes read without a reader of
                          their own (tensor arguments -> inputs, constants -> attrs by those names)
    folds:                {PyTorch name: (IR kind, tensor arguments read or None)}: nodes that become
                          constants when those arguments are constants (passes/fold.py)
    fold(name, kind, args, shape, dtype, where): evaluate such a node (numpy) -> array
    """

    __slots__ = ("infer_shapes", "derive_qparams", "generic_reads", "folds", "fold")

    def __init__(self, infer_shapes, derive_qparams, generic_reads=None, folds=None, fold=None):
        self.infer_shapes = infer_shapes
        self.derive_qparams = derive_qparams
        self.generic_reads = dict(generic_reads or {})
        self.folds = dict(folds or {})
        self.fold = fold
