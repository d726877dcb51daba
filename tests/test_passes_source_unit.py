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


def _q(name, scale=0.1, zp=3, dtype="uint8"):
    return Tensor(name, None, dtype, QParams(np.float32(scale), zp))


def _grid(scale, zp, dtype="uint8", qmin=0, qmax=255):
    return qdq.Grid(dtype, QParams(np.float32(scale), zp), qmin, qmax)


def _quantize(x, scale, zp, dtype="uint8", qmin=0, qmax=255):
    """The reader's quantize op (where PyTorch quantizes x)."""
    q = _q(x.name + "/quantize", scale, zp, dtype)
    return Op("quantize", [x], [q], {"quant_min": qmin, "quant_max": qmax}, q.name)


def _op(kind, ins, name, attrs=None):
    """A reader's op: reads its inputs as they are (a quantized one: its dequantized value), float output."""
    return Op(kind, ins, [Tensor(name)], attrs or {}, name)


def test_an_op_between_dequantize_and_quantize_is_quantized_on_the_quantizers_grid():
    x = _q("x")
    conv = _op("conv2d", [x, Tensor("w", (2, 3, 1, 1), "int8", QParams(np.float32(0.5), 0),
                                    np.zeros((2, 3, 1, 1), np.int8)), None], "conv")
    q = _quantize(conv.outputs[0], 0.2, 7)
    g = Graph([x], [q.outputs[0]], [conv, q])
    qdq.fold_qdq(g)
    assert [op.kind for op in g.ops] == ["conv2d", "dequantize"]
    out = g.ops[0].outputs[0]
    assert out.name == "conv" and out.dtype == "uint8" and out.qparams.same_as(QParams(np.float32(0.2), 7))
    assert g.ops[1].inputs[0] is out and g.outputs == [g.ops[1].outputs[0]]
    assert g.ops[1].outputs[0].name == "conv/dequantize"


def test_a_clamp_before_the_quantizer_folds_too():
    x = _q("x")
    add = _op("add", [x, x], "add", {"act": None})
    relu = _op("hardtanh", [add.outputs[0]], "relu", {"min": 0.0, "max": float("inf")})
    q = _quantize(relu.outputs[0], 0.2, 0)
    g = Graph([x], [q.outputs[0]], [add, relu, q])
    qdq.fold_qdq(g)
    assert [op.kind for op in g.ops] == ["add", "hardtanh", "dequantize"]
    assert all(op.outputs[0].qparams.same_as(QParams(np.float32(0.2), 0)) for op in g.ops[:2])


def test_an_op_whose_output_is_not_quantized_everywhere_runs_in_float_on_one_shared_dequantize():
    x = _q("x")
    s1 = _op("sigmoid", [x], "s1")
    s2 = _op("tanh", [x], "s2")
    q = _quantize(s1.outputs[0], 1.0 / 256, 0)
    g = Graph([x], [q.outputs[0], s1.outputs[0], s2.outputs[0]], [s1, s2, q])   # s1: also an output
    qdq.fold_qdq(g)
    assert [op.kind for op in g.ops] == ["dequantize", "sigmoid", "tanh", "quantize", "dequantize"]
    assert g.ops[1].inputs[0] is g.ops[2].inputs[0] is g.ops[0].outputs[0]
    assert g.ops[0].outputs[0].name == "x/dequantize" and g.ops[3].outputs[0].name == "s1/quantize"
    assert g.ops[1].outputs[0].qparams is None


def test_different_grids_downstream_keep_the_op_in_float():
    x = _q("x")
    s = _op("sigmoid", [x], "s")
    g = Graph([x], [], [s, _quantize(s.outputs[0], 0.1, 0), _quantize(s.outputs[0], 0.2, 0)])
    g.outputs = [g.ops[1].outputs[0], g.ops[2].outputs[0]]
    qdq.fold_qdq(g)
    assert [op.kind for op in g.ops][:2] == ["dequantize", "sigmoid"]


def test_same_grid_op_computes_on_its_input_grid_then_requantizes():
    x = _q("x")
    pool = _op("max_pool2d", [x], "pool")
    q = _quantize(pool.outputs[0], 0.2, 7)
    g = Graph([x], [q.outputs[0]], [pool, q])
    qdq.fold_qdq(g)
    assert [op.kind for op in g.ops] == ["max_pool2d", "dequantize", "quantize", "dequantize"]
    assert g.ops[0].outputs[0].qparams.same_as(x.qparams)
    assert g.ops[2].outputs[0].name == "pool/requantize"
    assert g.ops[2].outputs[0].qparams.same_as(QParams(np.float32(0.2), 7))


def test_the_readers_explicit_dequantize_is_shared_and_a_view_keeps_its_grid():
    x = _q("x")
    d = Op("dequantize", [x], [Tensor("x/dequantize")], {}, "x/dequantize")
    bc = _op("binary_const", [d.outputs[0], Tensor("c", (), "float32", None, np.float32(2))], "mul",
             {"op": "mul", "reverse": False})
    view = Op("reshape", [x], [_q("r")], {"shape": [-1]}, "r")
    v2 = _op("sigmoid", [view.outputs[0]], "s")
    g = Graph([x], [bc.outputs[0], v2.outputs[0]], [d, bc, view, v2])
    qdq.fold_qdq(g)
    assert [op.kind for op in g.ops] == ["dequantize", "binary_const", "reshape", "dequantize", "sigmoid"]
    assert g.ops[1].inputs[0] is g.ops[0].outputs[0] and g.ops[2].outputs[0].qparams is not None


def test_the_record_follows_the_quantize_outputs_and_names_dequantize_ops():
    from onelib.pytorch_quant.ir import SourceRecord
    x = _q("x")
    conv = _op("hardtanh", [x], "relu", {"min": 0.0, "max": 6.0})
    q = _quantize(conv.outputs[0], 0.1, 3)
    g = Graph([x], [q.outputs[0]], [conv, q])
    rec = SourceRecord("pt2", nodes={id(x): "x_q", id(conv.outputs[0]): "relu",
                                     id(q.outputs[0]): "quantize_1"},
                       dequantized=[(q.outputs[0], "dequantize_1")])
    qdq.fold_qdq(g, rec)
    out, f = g.ops[0].outputs[0], g.outputs[0]
    assert rec.nodes[id(out)] == "quantize_1" and rec.nodes[id(f)] == "dequantize_1"
    assert id(q.outputs[0]) not in rec.nodes and rec.dequantized == []


def test_a_narrow_quantizer_range_is_clamped_on_the_grid_once_and_noted():
    g = Graph()
    f = qdq.QdqFolder(g)
    grid = _grid(0.5, 0, qmin=0, qmax=127)   # x86 reduce_range
    x = Tensor("x", (1, 3))
    q1 = f.quantize(x, grid, "x/quantize")
    q2 = f.quantize(q1, grid, "again")
    assert q1 is q2 and [op.kind for op in g.ops] == ["quantize", "hardtanh"]
    assert g.ops[1].attrs == {"min": float("-inf"), "max": 63.5}
    f.finish()
    assert g.notes and "x/quantize (0..127)" in g.notes[0]


def test_a_full_quantizer_range_needs_no_clamp():
    g = Graph()
    f = qdq.QdqFolder(g)
    f.quantize(Tensor("x", (1, 3)), _grid(0.5, 0, "int8", -127, 127), "x/quantize")
    f.finish()
    assert [op.kind for op in g.ops] == ["quantize"] and not g.notes
