"""Torch-free unit layer: the pure helpers and circle-stage passes on values and graphs built by
hand (fast; no conversion, no runtime). Imports the helpers by their current public names."""
import itertools
import subprocess
import sys

import numpy as np

from onelib.pytorch_quant import hazards
from onelib.pytorch_quant.ir import Graph, Op, QParams, Tensor
from onelib.pytorch_quant.ops.conv import SAME, VALID, window_padding
from onelib.pytorch_quant.ops.layout import circle_perm
from onelib.pytorch_quant.ops.pool_window import adaptive_windows
from onelib.pytorch_quant.passes.circle_passes import cancel_transposes, fuse_activation

UNDER_TEST = ("onelib.pytorch_quant.hazards", "onelib.pytorch_quant.ops.conv", "onelib.pytorch_quant.ops.layout",
              "onelib.pytorch_quant.ops.pool_window", "onelib.pytorch_quant.passes.circle_passes")


def test_the_unit_layer_imports_no_torch():
    code = "import sys\n%s\nprint('torch' in sys.modules)" % "\n".join("import " + m for m in UNDER_TEST)
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, universal_newlines=True, check=True)
    assert out.stdout.strip() == "False"


def _q(dtype, shape, scale=0.1, zp=0, const=False):
    data = np.zeros(shape, dtype) if const else None
    return Tensor("t%d" % next(_n), shape, dtype, QParams(scale, zp), data)


_n = itertools.count()


def _perm_t(perm):
    return Tensor("perm%d" % next(_n), (len(perm),), "int32", None, np.array(perm, np.int32))


# ------------------------------------------------------------------------------ layout, windows

def test_circle_perm_matches_pytorch_permute_on_nhwc_storage():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    for dims in itertools.permutations(range(4)):
        want = x.transpose(dims).transpose(0, 2, 3, 1)       # PyTorch's result, stored NHWC
        got = x.transpose(0, 2, 3, 1).transpose(circle_perm(list(dims), 4))
        assert np.array_equal(got, want), dims
    y = np.arange(24).reshape(2, 3, 4)
    for dims in itertools.permutations(range(3)):
        assert np.array_equal(y.transpose(circle_perm(list(dims), 3)), y.transpose(dims)), dims


def test_window_padding_same_and_valid():
    x = Tensor("x", (1, 8, 8, 3), "uint8", QParams(0.1, 3))
    assert (SAME, VALID) == (0, 1)                                           # circle's Padding enum
    assert window_padding(None, x, "x", [3, 3], [1, 1], [0, 0], [1, 1]) == (x, VALID)
    assert window_padding(None, x, "x", [3, 3], [1, 1], [1, 1], [1, 1]) == (x, SAME)
    x7 = Tensor("x7", (1, 7, 7, 3), "uint8", QParams(0.1, 3))
    assert window_padding(None, x7, "x7", [3, 3], [2, 2], [1, 1], [1, 1]) == (x7, SAME)  # stride 2


def test_adaptive_windows_cover_the_axis_like_pytorch():
    assert adaptive_windows(10, 3) == [(0, 4), (3, 4), (6, 4)]
    assert adaptive_windows(5, 5) == [(i, 1) for i in range(5)]
    for n, m in ((7, 3), (9, 4), (4, 6)):
        w = adaptive_windows(n, m)
        assert w[0][0] == 0 and sum(w[-1]) == n


# ------------------------------------------------------------------------------ passes

def test_cancel_transposes_drops_an_inverse_pair_only():
    x = Tensor("x", (1, 2, 3, 4))
    a, b, c = Tensor("a", (1, 3, 4, 2)), Tensor("b", (1, 2, 3, 4)), Tensor("c", (1, 2, 3, 4))
    g = Graph([x], [c], [Op("TRANSPOSE", [x, _perm_t((0, 2, 3, 1))], [a]),
                         Op("TRANSPOSE", [a, _perm_t((0, 3, 1, 2))], [b]),
                         Op("ABS", [b], [c])])
    cancel_transposes(g, None)
    assert [op.kind for op in g.ops] == ["ABS"] and g.ops[0].inputs[0] is x

    d = Tensor("d", (1, 4, 2, 3))
    g = Graph([x], [c], [Op("TRANSPOSE", [x, _perm_t((0, 2, 3, 1))], [a]),
                         Op("TRANSPOSE", [a, _perm_t((0, 2, 3, 1))], [d]),
                         Op("ABS", [d], [c])])
    cancel_transposes(g, None)
    assert [op.kind for op in g.ops] == ["TRANSPOSE", "TRANSPOSE", "ABS"]


def _conv_relu(relu_q):
    x, y = _q("uint8", (1, 4, 4, 2)), _q("uint8", (1, 4, 4, 2), 0.2, 5)
    w, z = _q("uint8", (2, 1, 1, 2), const=True), Tensor("z", (1, 4, 4, 2), "uint8", relu_q)
    conv = Op("CONV_2D", [x, w, None], [y], {"fusedActivationFunction": 0})
    return Graph([x], [z], [conv, Op("RELU6", [y], [z])]), conv, z


def test_fuse_activation_on_the_same_grid_only():
    g, conv, z = _conv_relu(QParams(0.2, 5))
    fuse_activation(g, None)
    assert [op.kind for op in g.ops] == ["CONV_2D"]
    assert conv.attrs["fusedActivationFunction"] == 3 and conv.outputs[0] is z
    g, conv, _ = _conv_relu(QParams(0.3, 5))
    fuse_activation(g, None)
    assert [op.kind for op in g.ops] == ["CONV_2D", "RELU6"] and conv.attrs["fusedActivationFunction"] == 0


def test_qparams_uniform_and_same_as():
    assert QParams(0.5, 3).uniform
    assert QParams([0.5, 0.5], [3, 3], axis=0).uniform
    assert not QParams([0.5, 0.25], [3, 3], axis=0).uniform
    assert not QParams([0.5, 0.5], [3, 4], axis=0).uniform
    assert QParams(0.5, 3).same_as(QParams(0.5, 3)) and not QParams(0.5, 3).same_as(QParams(0.5, 4))


# ------------------------------------------------------------------------------ hazards

def _graph(op):
    return Graph([], [], [op])


def test_each_onert_hazard_is_found_with_its_text():
    u8, i8 = _q("uint8", (1, 4)), _q("int8", (1, 4))
    per_channel = Tensor("w", (2, 4), "uint8", QParams([0.1, 0.2], [0, 0], axis=0), np.zeros((2, 4), np.uint8))
    cases = [
        (Op("ADD", [_q("int16", (1, 4)), _q("int16", (1, 4))], [_q("int16", (1, 4))], name="add"),
         "add (ADD): onert has no int16 kernels"),
        (Op("FULLY_CONNECTED", [u8, per_channel, None], [_q("uint8", (1, 2))], name="fc"),
         "fc: onert uses channel 0's scale for a per-channel uint8 FULLY_CONNECTED"),
        (Op("FULLY_CONNECTED", [i8, _q("int8", (2, 4), const=True), None], [_q("int8", (1, 2))], name="fc8"),
         "fc8: onert has no int8 FULLY_CONNECTED"),
        (Op("CONV_2D", [_q("uint8", (1, 4, 4, 2)), _q("int8", (2, 1, 1, 2), const=True), None],
            [_q("uint8", (1, 4, 4, 2))], name="conv"),
         "conv: onert reads int8 weights beside uint8 activations as uint8"),
        (Op("QUANTIZE", [Tensor("f", (1, 4))], [_q("int8", (1, 4))], name="q"),
         "q: onert's QUANTIZE to int8 clamps to [0, 255] and wraps"),
        (Op("RELU6", [u8], [_q("uint8", (1, 4))], name="r"), "r: onert has no standalone quantized RELU6"),
        (Op("SLICE", [_q("uint8", (1, 2, 3, 4, 5))], [_q("uint8", (1, 1, 1, 1, 1))], name="s"),
         "s: onert computes a 5-D SLICE wrongly (measured: 124 LSB, TICO exact)"),
    ]
    for op, text in cases:
        assert hazards.onert_unreliable(_graph(op)) == text
    assert hazards.onert_unreliable(_graph(Op("ADD", [u8, u8], [_q("uint8", (1, 4))]))) is None


def test_luci_profile_hazards_one_line_per_hazard_first_op_named():
    m1 = Op("MUL", [_q("uint8", (1, 4)), _q("uint8", (1, 4))], [_q("uint8", (1, 4))], name="mul1")
    m2 = Op("MUL", [_q("uint8", (1, 4)), _q("uint8", (1, 4))], [_q("uint8", (1, 4))], name="mul2")
    rq = Op("QUANTIZE", [_q("uint8", (1, 4))], [_q("uint8", (1, 4), 0.3)], name="rq")
    assert hazards.luci_profile_hazards(Graph([], [], [m1, m2, rq])) == [
        "uint8 MUL: luci-interpreter has no uint8 MUL (first: mul1)",
        "integer-to-integer QUANTIZE: onert quantizes only from float (first: rq)"]


def test_every_hazard_names_its_runtime_form_effect_and_source():
    assert len(set(h.name for h in hazards.ALL)) == len(hazards.ALL)
    for h in hazards.ALL:
        assert h.runtimes and h.form and h.wrong and h.source and h.says, h.name
        assert set(h.runtimes) <= {hazards.ONERT, hazards.LUCI_INTERPRETER}, h.name
    names = lambda hs: set(h.name for h in hs)  # noqa: E731
    assert names(hazards.ONERT_UNRELIABLE) | names(hazards.LUCI_PROFILE) == names(hazards.ALL)
