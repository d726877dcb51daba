"""Constant folding (passes/fold.py, ``@op(fold=...)``), torch-free: each fold function on numpy
values, and the view semantics an exported program relies on (``fill_`` of a ``slice`` writes to
the base, as torchvision Swin's attention mask is built)."""
import numpy as np
import pytest

from onelib.pytorch_quant.errors import ConversionError
from onelib.pytorch_quant.ops import registry
from onelib.pytorch_quant.passes import fold


def ev(name, args, shape=None, dtype=None):
    kind = registry.folds("pt2")[name][0]
    return fold.evaluate(name, kind, args, shape, dtype, "test")


def test_every_fold_target_is_a_declared_read_and_torchscript_folds_its_generic_kinds():
    table = registry.folds("pt2")
    for name, (kind, _) in table.items():
        assert name in registry.DECLS[kind].reads["pt2"]
    assert "aten.fill_.Tensor" in table and "aten.new_zeros.default" in table
    ts = registry.folds("torchscript")
    assert set(ts) == set(registry.generic_reads("torchscript")) & set(ts)
    assert {"aten::expand", "aten::repeat", "aten::roll"} <= set(ts)


def test_fill_of_slices_writes_through_to_the_base_like_swins_mask():
    h = w = 6
    base = ev("aten.new_zeros.default", {"self": None, "size": [h, w]}, (h, w), "float32")
    count = 0
    want = np.zeros((h, w), np.float32)
    for a, b in ((0, -2), (-2, -1), (-1, None)):
        for c, d in ((0, -2), (-2, -1), (-1, None)):
            rows = ev("aten.slice.Tensor", {"self": base, "dim": 0, "start": a, "end": b}, None)
            cell = ev("aten.slice.Tensor", {"self": rows, "dim": 1, "start": c, "end": d}, None)
            ev("aten.fill_.Tensor", {"self": cell, "value": np.array(count, np.int64)}, cell.shape, "float32")
            want[a:b, c:d] = count
            count += 1
    assert np.array_equal(base, want) and base.dtype == np.float32
    m = ev("aten.sub.Tensor", {"self": base.reshape(1, 36), "other": base.reshape(36, 1)}, (36, 36), "float32")
    ne = ev("aten.ne.Scalar", {"self": m, "other": 0}, (36, 36), "bool")
    filled = ev("aten.masked_fill.Scalar", {"self": m, "mask": ne, "value": -100.0}, (36, 36), "float32")
    assert ne.dtype == np.bool_ and set(np.unique(filled)) <= {0.0, -100.0}
    assert np.array_equal(filled == 0, base.reshape(1, 36) == base.reshape(36, 1))


def test_index_expand_repeat_roll_cat_permute_select():
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    idx = np.array([5, 0, 3], np.int64)
    assert np.array_equal(ev("aten.index.Tensor", {"self": table, "indices": [idx]}, (3, 2)), table[idx])
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    assert ev("aten.expand.default", {"self": x, "size": [4, -1, -1]}, (4, 2, 3)).shape == (4, 2, 3)
    assert np.array_equal(ev("aten.repeat.default", {"self": x, "repeats": [1, 2, 1]}, (1, 4, 3)),
                          np.tile(x, (1, 2, 1)))
    assert np.array_equal(ev("aten.roll.default", {"self": x, "shifts": [-1, 1], "dims": [1, 2]}, (1, 2, 3)),
                          np.roll(np.roll(x, -1, 1), 1, 2))
    assert ev("aten.cat.default", {"tensors": [x, x], "dim": 2}, (1, 2, 6)).shape == (1, 2, 6)
    assert np.array_equal(ev("aten.transpose.int", {"self": x, "dim0": 0, "dim1": -1}, (3, 2, 1)), x.swapaxes(0, -1))
    assert np.array_equal(ev("aten.select.int", {"self": x, "dim": 1, "index": -1}, (1, 3)), x[:, -1])
    assert np.array_equal(ev("aten.unflatten.int", {"self": x, "dim": 2, "sizes": [3, 1]}, (1, 2, 3, 1)),
                          x.reshape(1, 2, 3, 1))
    assert np.array_equal(ev("aten.rsub.Scalar", {"self": x, "other": 1.0}, (1, 2, 3)), 1.0 - x)


def test_a_fold_that_disagrees_with_the_recorded_shape_is_an_error():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ConversionError, match="the program records"):
        ev("aten.permute.default", {"self": x, "dims": [1, 0]}, (2, 3))
