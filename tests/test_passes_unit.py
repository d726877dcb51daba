"""Torch-free unit tests of the circle-stage passes that move QUANTIZE/DEQUANTIZE through data
movement (passes/profiles.py), on graphs built by hand."""
import numpy as np

from onelib.pytorch_quant.ir import Graph, Op, QParams, Tensor
from onelib.pytorch_quant.passes import profiles


def _t(name, shape, q=None, dtype=None):
    return Tensor(name, shape, dtype or ("uint8" if q is not None else "float32"), q)


def _perm(name, perm):
    return Tensor(name, (len(perm),), "int32", None, np.array(perm, np.int32))


class _Opts(object):
    profile = "luci"


def test_input_transpose_moves_after_quantize():
    q = QParams(0.1, 3)
    x = _t("x", (1, 3, 4, 5))
    xt = _t("x/nhwc", (1, 4, 5, 3))
    xq = _t("xq", (1, 4, 5, 3), q)
    y = _t("y", (1, 4, 5, 3), q)
    g = Graph([x], [y], [Op("TRANSPOSE", [x, _perm("p", (0, 2, 3, 1))], [xt]),
                         Op("QUANTIZE", [xt], [xq]),
                         Op("MAX_POOL_2D", [xq], [y], {"padding": 1})])
    profiles.quantize_earlier(g, _Opts())
    assert [op.kind for op in g.ops] == ["QUANTIZE", "TRANSPOSE", "MAX_POOL_2D"]
    assert g.ops[0].inputs[0] is x and g.ops[0].outputs[0].qparams.same_as(q)
    assert g.ops[1].outputs[0] is xq


def test_output_transpose_moves_before_dequantize():
    q = QParams(0.1, 3)
    a = _t("a", (1, 4, 5, 3), q)
    af = _t("a/float", (1, 4, 5, 3))
    y = _t("y", (1, 3, 4, 5))
    g = Graph([a], [y], [Op("DEQUANTIZE", [a], [af]), Op("TRANSPOSE", [af, _perm("p", (0, 3, 1, 2))], [y])])
    profiles.dequantize_later(g, _Opts())
    assert [op.kind for op in g.ops] == ["TRANSPOSE", "DEQUANTIZE"]
    assert g.ops[0].inputs[0] is a and g.ops[0].outputs[0].qparams.same_as(q)
    assert g.ops[1].outputs[0] is y and g.outputs == [y]


def test_float_split_between_dq_and_q_runs_on_integers():
    q = QParams(0.1, 3)
    a = _t("a", (1, 8), q)
    af = _t("af", (1, 8))
    s0, s1 = _t("s0", (1, 4)), _t("s1", (1, 4))
    z0 = _t("z0", (1, 4), q)                     # same grid: the QUANTIZE disappears
    z1 = _t("z1", (1, 4), QParams(0.2, 0))       # another grid: one integer QUANTIZE (luci)
    axis = Tensor("axis", (), "int32", None, np.array(1, np.int32))
    g = Graph([a], [z0, z1], [Op("DEQUANTIZE", [a], [af]), Op("SPLIT", [axis, af], [s0, s1], {"numSplits": 2}),
                              Op("QUANTIZE", [s0], [z0]), Op("QUANTIZE", [s1], [z1])])
    profiles.dequantize_later(g, _Opts())
    profiles.requantize_in_one_op(g, _Opts())
    kinds = [op.kind for op in g.ops]
    assert kinds == ["SPLIT", "QUANTIZE"], kinds
    assert g.ops[0].inputs[1] is a
    assert g.ops[1].inputs[0].qparams.same_as(q) and g.ops[1].outputs[0] is z1
    assert g.outputs[0].qparams.same_as(q)


def test_concat_of_floats_quantized_per_input():
    q = QParams(0.1, 3)
    a = _t("a", (1, 2))
    b = _t("b", (1, 2))
    c = _t("c", (1, 4))
    z = _t("z", (1, 4), q)
    g = Graph([a, b], [z], [Op("CONCATENATION", [a, b], [c], {"axis": 1}), Op("QUANTIZE", [c], [z])])
    profiles.quantize_earlier(g, _Opts())
    assert [op.kind for op in g.ops] == ["QUANTIZE", "QUANTIZE", "CONCATENATION"]
    assert g.ops[2].outputs[0] is z
    assert all(t.qparams.same_as(q) for t in g.ops[2].inputs)


def test_compute_op_is_not_moved():
    q = QParams(0.1, 3)
    a = _t("a", (1, 4), q)
    af, bf = _t("af", (1, 4)), _t("bf", (1, 4))
    g = Graph([a], [bf], [Op("DEQUANTIZE", [a], [af]), Op("LOGISTIC", [af], [bf])])
    profiles.dequantize_later(g, _Opts())
    assert [op.kind for op in g.ops] == ["DEQUANTIZE", "LOGISTIC"]


def test_mixed_granularity_becomes_per_channel():
    qx = QParams(0.1, 3)
    x = _t("x", (1, 4, 4, 2), qx)
    w1 = Tensor("w1", (3, 1, 1, 2), "uint8", QParams([0.1, 0.2, 0.3], [1, 2, 3]), np.ones((3, 1, 1, 2), np.uint8))
    b1 = Tensor("b1", (3,), "int32", QParams(np.float32(0.1) * np.array([0.1, 0.2, 0.3], np.float32), 0),
                np.zeros(3, np.int32))
    y1 = _t("y1", (1, 4, 4, 3), qx)
    w2 = Tensor("w2", (5, 1, 1, 3), "uint8", QParams(0.5, 7), np.ones((5, 1, 1, 3), np.uint8))
    b2 = Tensor("b2", (5,), "int32", QParams(np.float32(0.1) * np.float32(0.5), 0), np.zeros(5, np.int32))
    y2 = _t("y2", (1, 4, 4, 5), qx)
    g = Graph([x], [y2], [Op("CONV_2D", [x, w1, b1], [y1]), Op("CONV_2D", [y1, w2, b2], [y2])])
    profiles.unify_weight_granularity(g, _Opts())
    w, b = g.ops[1].inputs[1], g.ops[1].inputs[2]
    assert w.qparams.scale.tolist() == [0.5] * 5 and w.qparams.zero_point.tolist() == [7] * 5
    assert b.qparams.scale.size == 5 and np.all(b.qparams.scale == np.float32(0.1) * np.float32(0.5))
    assert w.data is g.ops[1].inputs[1].data


def test_uniform_qparams_need_no_onert_workaround():
    """A per-channel FC whose channels share one scale and zero point (the luci profile's repeated
    qparams) is computed right by a runtime that reads channel 0's: fc_as_conv leaves it alone and
    no hazard is reported; differing scales are rewritten and reported."""
    from onelib.pytorch_quant.passes.circle_passes import fc_as_conv
    assert QParams([0.5] * 3, [7] * 3).uniform and QParams(0.5, 7).uniform
    assert not QParams([0.5, 0.25, 0.5], [7] * 3).uniform and not QParams([0.5] * 3, [7, 8, 7]).uniform
    for scales, rewritten in (([0.5] * 3, False), ([0.5, 0.25, 0.5], True)):
        x = _t("x", (1, 4), QParams(0.1, 3))
        w = Tensor("w", (3, 4), "uint8", QParams(scales, [128] * 3), np.full((3, 4), 128, np.uint8))
        b = Tensor("b", (3,), "int32", QParams(np.float32(0.1) * np.array(scales, np.float32), 0), np.zeros(3, np.int32))
        y = _t("y", (1, 3), QParams(0.2, 5))
        g = Graph([x], [y], [Op("FULLY_CONNECTED", [x, w, b], [y], {"fusedActivationFunction": 0}, "fc")])
        assert bool(profiles.onert_hazards(g)) == rewritten
        fc_as_conv(g, _Opts())
        assert ("CONV_2D" in [op.kind for op in g.ops]) == rewritten
