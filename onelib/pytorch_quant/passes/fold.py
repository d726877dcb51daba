"""Constant folding: an op whose tensor arguments are all constants is evaluated at conversion
time (numpy, no torch) and becomes a constant. One table-driven mechanism: a kind declares
``fold=fn`` in its ``@op`` (ops/declare.py); ``registry.folds(frontend)`` maps the PyTorch names
it reads to it; the frontend (handed ``fold_table`` and ``evaluate`` by api.py, as it is handed
the shape rules) asks before reading a node and keeps the result as a constant tensor.

Why at read time, node by node in program order: exported programs build constants with
in-place ops on views (torchvision's Swin mask: ``new_zeros``, then ``fill_`` of ``slice``s of
it, then ``view``/``sub``/``masked_fill`` of the whole). Evaluated in order with numpy views
(``slice`` returns a view, ``fill_`` writes through it), the base array holds what PyTorch's
does; readers then see a constant where PyTorch computed one (``cat`` of a constant, an ``add``
of a constant mask).
"""
import numpy as np

from ..errors import ConversionError


def fold_table(frontend):
    """{PyTorch name: (kind, tensor arguments read or None)} (``registry.folds``)."""
    from ..ops import registry
    return registry.folds(frontend)


def evaluate(name, kind, args, shape, dtype, where):
    """PyTorch op ``name`` (read as ``kind``) evaluated on ``args`` (schema name -> value; constant
    tensors as numpy arrays) -> a numpy array of the recorded ``shape`` (tuple or None) and
    ``dtype`` (numpy name or None)."""
    from ..ops import registry
    out = np.asarray(registry.FOLDS[kind](name, args, shape))
    if dtype is not None and out.dtype != np.dtype(dtype):
        out = out.astype(dtype)
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise ConversionError("%s: %s folded to shape %s, but the program records %s"
                              % (where, kind, tuple(out.shape), tuple(shape)))
    return out
