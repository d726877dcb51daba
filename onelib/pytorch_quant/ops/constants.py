"""Ops that build constants: ``new_zeros``/``zeros``/``full``, ``fill_``, comparisons with a number,
``index`` with constant indices. Exported programs compute these in forward from buffers and
shapes alone (torchvision Swin's attention mask, its relative-position bias); the .pt2 reader
folds them (``fold=``, passes/fold.py) into constant tensors, so they never reach circle. On a
computed tensor they are refused: there is no lowering."""
import numpy as np

from ..errors import ConversionError
from .declare import op


def _recorded(op):
    raise ConversionError("%s: %s is converted only when it is computed from constants" % (op.name, op.kind))


def _no_shape(op):
    _recorded(op)


def fold_new_zeros(name, args, shape):
    """new_zeros/new_ones/new_full(self, size[, fill_value]), zeros/ones/full(size[, fill_value]):
    only the recorded shape and dtype matter (the reader casts to the recorded dtype)."""
    if "new_zeros" in name or ".zeros" in name:
        value = 0
    elif "ones" in name:
        value = 1
    else:
        value = args["fill_value"]
    return np.full(shape, value, np.float64 if isinstance(value, float) else np.int64)


def fold_fill(name, args, shape):
    """fill_(self, value): writes through ``self``, a view of its base when it is a folded slice
    (how an exported program expresses ``mask[a:b, c:d] = k``)."""
    x = args["self"]
    value = np.asarray(args["value"]).reshape(())
    if not name.startswith("aten.fill_"):   # the functional fill: a new tensor
        return np.full(x.shape, value, x.dtype)
    x[...] = value
    return x


_COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
            "ge": np.greater_equal}


def fold_compare(name, args, shape):
    return _COMPARE[name.split(".")[1]](args["self"], args["other"])


def fold_index(name, args, shape):
    """x[i0, i1, ...] with constant index tensors (None skips an axis), numpy's advanced indexing
    (PyTorch's, for indices that are not separated by a skipped axis)."""
    idx = tuple(slice(None) if i is None else (i.astype(np.bool_) if i.dtype == np.bool_ else i.astype(np.int64))
                for i in args["indices"])
    return args["self"][idx]


@op("new_zeros", shape=_no_shape, fold=fold_new_zeros, fold_args=(),
    reads={"pt2": ("aten.new_zeros.default", "aten.new_ones.default", "aten.new_full.default",
                   "aten.zeros.default", "aten.ones.default", "aten.full.default")},
    inputs="-", attrs="size (, fill_value)", circle="(folded into a constant)",
    conditions="`.pt2`: always folded (only the recorded shape and dtype are read)")
@op("fill", shape=_no_shape, fold=fold_fill,
    reads={"pt2": ("aten.fill_.Tensor", "aten.fill_.Scalar", "aten.fill.Tensor", "aten.fill.Scalar")},
    attrs="value", circle="(folded into a constant)",
    conditions="`.pt2`, on a constant (`mask[a:b] = k` on a buffer made in forward: slices are views)")
@op("compare", shape=_no_shape, fold=fold_compare,
    reads={"pt2": tuple("aten.%s.%s" % (k, v) for k in sorted(_COMPARE) for v in ("Scalar", "Tensor"))},
    inputs="x, other", circle="(folded into a constant)", conditions="`.pt2`, on constants")
@op("index", shape=_no_shape, fold=fold_index, reads={"pt2": ("aten.index.Tensor",)},
    inputs="x, indices", circle="(folded into a constant)",
    conditions="`.pt2`, constant table and indices (Swin's relative-position bias)")
def lower_constant_only(ctx, op):
    _recorded(op)
