"""Torch-free unit tests of the source-stage passes on graphs built by hand: shape inference and
derived qparams (passes/shapes.py) and the .pt2 reader's Q/DQ folding (passes/qdq.py)."""
import numpy as np
import pytest

from onelib.pytorch_quant.errors import ConversionError
from onelib.pytorch_quant.ir import Graph, Op, QParams, Tensor
from onelib.pytorch_quant.passes import qdq, shapes


def _const(name, shape, dtype="float32"):
    return Tensor(name, shape, dtype, None, np.zeros(shape, dtype))


def _chain():
    x = Tensor("x", (1, 3, 8, 8))
    c = Tensor("conv", None)
    p = Tensor("pool", None)
    f = Tensor("flat", None)
    y = Tensor("fc", None)
    ops = [Op("conv2d", [x, _const("conv.weight", (4, 3, 3, 3)), None], [c],
              {"stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 1, "act": None}, "conv"),
           Op("max_pool2d", [c], [p], {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0],
                                       "dilation": [1, 1], "ceil_mode": False}, "pool"),
           Op("flatten", [p], [f], {"start": 1, "end": -1}, "flat"),
           Op("linear", [f, _const("fc.weight", (10, 64)), None], [y], {"act": None}, "fc")]
    return Graph([x], [y], ops, source="hand.pt")


def test_infer_shapes_follows_the_graph():
    g = _chain()
    shapes.infer_shapes(g)
    assert [op.outputs[0].shape for op in g.ops] == [(1, 4, 8, 8), (1, 4, 4, 4), (1, 64), (1, 10)]


def test_infer_shapes_stops_at_an_unknown_input_shape():
    g = _chain()
    g.inputs[0].shape = None
    shapes.infer_shapes(g)
    assert all(op.outputs[0].shape is None for op in g.ops)


def test_infer_shapes_gives_each_output_of_a_split_its_shape():
    x = Tensor("x", (1, 6, 2, 2))
    outs = [Tensor("s:0"), Tensor("s:1")]
    g = Graph([x], outs, [Op("split", [x], outs, {"dim": 1, "sizes": [2, 4]}, "s")])
    shapes.infer_shapes(g)
    assert [t.shape for t in outs] == [(1, 2, 2, 2), (1, 4, 2, 2)]


def test_infer_shapes_names_the_op_whose_rule_fails():
    g = _chain()
    del g.ops[0].attrs["stride"]
    with pytest.raises(ConversionError, match=r"hand.pt: conv \(conv2d\): cannot infer the output shape "
                                              r"from inputs \[\(1, 3, 8, 8\), \(4, 3, 3, 3\)\]"):
        shapes.infer_shapes(g)


def test_infer_shapes_refuses_a_kind_without_a_shape_rule():
    x = Tensor("x", (1, 3))
    g = Graph([x], [], [Op("no_such_kind", [x], [Tensor("y")], {}, "y")])
    with pytest.raises(ConversionError, match="internal: no shape rule for no_such_kind"):
        shapes.infer_shapes(g)


def test_derive_qparams_moves_the_zero_point_of_add_scalar_and_leaves_other_kinds():
    x = Tensor("x", (1, 3), "uint8", QParams(np.float32(0.5), 10))
    add = Op("add_scalar", [x], [Tensor("y", None, "uint8")], {"scalar": 2.0, "act": None}, "y")
    shapes.derive_qparams(add)
    assert add.outputs[0].qparams.same_as(QParams(np.float32(0.5), 6))
    relu = Op("hardtanh", [x], [Tensor("r", None, "uint8")], {"min": 0.0, "max": 6.0}, "r")
    shapes.derive_qparams(relu)
    assert relu.outputs[0].qparams is None


class _Spec(object):
    """What the .pt2 reader hands the folder: a quantizer's dtype, grid and code range."""

    def __init__(self, scale, zp, dtype="uint8", qmin=0, qmax=255):
        self.dtype, self.qparams, self.qmin, self.qmax = dtype, QParams(np.float32(scale), zp), qmin, qmax

    def matches(self, t):
        return t.qparams is not None and t.dtype == self.dtype and self.qparams.same_as(t.qparams)


def _q(name, scale=0.1, zp=3):
    return Tensor(name, None, "uint8", QParams(np.float32(scale), zp))


def test_float_op_reads_one_shared_dequantize():
    g = Graph()
    f = qdq.QdqFolder(g)
    a = _q("a")
    out1, seen1 = f.place("sigmoid", "s1", [a], (), {}, None)
    out2, seen2 = f.place("tanh", "s2", [a], (), {}, None)
    assert [op.kind for op in g.ops] == ["dequantize", "sigmoid", "tanh"]
    assert g.ops[0].outputs[0].name == "a/dequantize"
    assert g.ops[1].inputs[0] is g.ops[2].inputs[0] is g.ops[0].outputs[0]
    assert out1 is seen1 and out1.qparams is None and out1.dtype == "float32"


def test_quantized_op_takes_the_quantizers_grid():
    g = Graph()
    out, seen = qdq.QdqFolder(g).place("add", "add", [_q("a"), _q("b")], (), {"act": None}, _Spec(0.2, 7))
    assert [op.kind for op in g.ops] == ["add"] and out is seen
    assert out.dtype == "uint8" and out.qparams.same_as(QParams(np.float32(0.2), 7))


def test_same_grid_op_computes_on_its_input_grid_then_requantizes():
    g = Graph()
    a = _q("a")
    out, seen = qdq.QdqFolder(g).place("max_pool2d", "pool", [a], (), {}, _Spec(0.2, 7))
    assert [op.kind for op in g.ops] == ["max_pool2d", "dequantize", "quantize"]
    assert out.qparams.same_as(a.qparams)
    assert seen.name == "pool/requantize" and seen.qparams.same_as(QParams(np.float32(0.2), 7))


def test_a_narrow_quantizer_range_is_clamped_on_the_grid_once_and_noted():
    g = Graph()
    f = qdq.QdqFolder(g)
    spec = _Spec(0.5, 0, qmin=0, qmax=127)   # x86 reduce_range
    x = Tensor("x", (1, 3))
    q1 = f.quantize(x, spec, "x/quantize")
    q2 = f.quantize(q1, spec, "again")
    assert q1 is q2 and [op.kind for op in g.ops] == ["quantize", "hardtanh"]
    assert g.ops[1].attrs == {"min": float("-inf"), "max": 63.5}
    f.finish()
    assert g.notes and "x/quantize (0..127)" in g.notes[0]


def test_a_full_quantizer_range_needs_no_clamp():
    g = Graph()
    f = qdq.QdqFolder(g)
    f.quantize(Tensor("x", (1, 3)), _Spec(0.5, 0, "int8", -127, 127), "x/quantize")
    f.finish()
    assert [op.kind for op in g.ops] == ["quantize"] and not g.notes
