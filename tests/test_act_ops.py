"""silu, gelu, softmax and log_softmax on any dim, tanh in a .pt2 (issue 10): the circle forms.

The numbers (within 1 LSB of PyTorch on onert and TICO) are the sweep's (tests/sweep.py); here
the structure each frontend gives: the programs are written by hand in PyTorch's own forms (PT2E's
quantized_decomposed ops around a float aten op; FX's dequantize / float op / quantize_per_tensor,
traced), so no calibration runs."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.ao.quantization.fx._decomposed  # noqa: E402,F401  (registers torch.ops.quantized_decomposed)
import torch.nn.functional as F  # noqa: E402

from onelib.pytorch_quant import api  # noqa: E402
from onelib.pytorch_quant.errors import ConversionError  # noqa: E402

SHAPE = (1, 3, 4, 5)


class _Pt2Island(torch.nn.Module):
    """quantize -> dequantize -> fn -> quantize -> dequantize, as PT2E writes an op it leaves float."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        qd = torch.ops.quantized_decomposed
        q = qd.quantize_per_tensor(x, 0.05, 3, -128, 127, torch.int8)
        y = self.fn(qd.dequantize_per_tensor(q, 0.05, 3, -128, 127, torch.int8))
        q2 = qd.quantize_per_tensor(y, 0.03, -20, -128, 127, torch.int8)
        return qd.dequantize_per_tensor(q2, 0.03, -20, -128, 127, torch.int8)


class _FxIsland(torch.nn.Module):
    """quantize_per_tensor -> dequantize -> fn -> quantize_per_tensor -> dequantize (FX's form)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        q = torch.quantize_per_tensor(x, 0.05, 128, torch.quint8)
        y = self.fn(q.dequantize())
        return torch.quantize_per_tensor(y, 0.03, 100, torch.quint8).dequantize()


def _convert(fn, frontend, **kw):
    x = torch.randn(SHAPE)
    if frontend == "pt2":
        src = torch.export.export(_Pt2Island(fn), (x,))
    else:
        src = torch.jit.trace(_FxIsland(fn), x)
        kw.setdefault("input_shapes", [list(SHAPE)])
    return api.convert(src, api.ConvertOptions(profile=kw.pop("profile", "onert"), **kw))


def _ops(conv, kind):
    return [op for op in conv.graph.ops if op.kind == kind]


FRONTENDS = ["pt2", "fx"]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_is_float_gelu_with_pytorchs_approximation(frontend, approximate):
    conv = _convert(lambda v: F.gelu(v, approximate=approximate), frontend)
    gelu, = _ops(conv, "GELU")
    assert gelu.attrs == {"approximate": approximate == "tanh"}
    assert gelu.inputs[0].dtype == "float32" and gelu.outputs[0].dtype == "float32"
    q = _ops(conv, "QUANTIZE")[-1]
    assert q.inputs[0] is gelu.outputs[0]
    assert float(q.outputs[0].qparams.scale[0]) == pytest.approx(0.03)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("inplace", [False, True])
def test_silu_is_logistic_times_x_in_float(frontend, inplace):
    conv = _convert(lambda v: F.silu(v, inplace=inplace), frontend)
    sig, = _ops(conv, "LOGISTIC")
    mul, = _ops(conv, "MUL")
    assert sig.inputs[0] in mul.inputs and sig.outputs[0] in mul.inputs
    assert all(t.dtype == "float32" for t in mul.inputs + mul.outputs)


def _perm(op):
    return [int(v) for v in op.inputs[1].data]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("kind, fn", [("SOFTMAX", F.softmax), ("LOG_SOFTMAX", F.log_softmax)])
@pytest.mark.parametrize("dim", [1, -1, 0, 2])
def test_softmax_axis_is_moved_last(frontend, kind, fn, dim):
    """Circle's SOFTMAX/LOG_SOFTMAX reduce the last axis; 4-D activations are NHWC in circle, so
    PyTorch's dim 1 is already last and the others are swapped with it by a TRANSPOSE pair."""
    conv = _convert(lambda v: fn(v, dim), frontend)
    op, = _ops(conv, kind)
    nhwc = {0: 0, 1: 3, 2: 1, 3: 2}[dim % 4]
    swaps = [t for t in _ops(conv, "TRANSPOSE") if _perm(t) not in ([0, 2, 3, 1], [0, 3, 1, 2])]
    if nhwc == 3:
        assert swaps == []
    else:
        want = [0, 1, 2, 3]
        want[nhwc], want[3] = 3, nhwc
        assert [_perm(t) for t in swaps] == [want, want]
    assert op.outputs[0].dtype == "float32"   # no runtime has a quantized form PyTorch's grid fits


def test_log_softmax_on_the_last_axis_of_a_3d_tensor_needs_no_transpose():
    x = torch.randn(2, 3, 7)
    conv = api.convert(torch.export.export(_Pt2Island(lambda v: F.log_softmax(v, -1)), (x,)),
                       api.ConvertOptions(profile="onert"))
    assert [op.kind for op in conv.graph.ops] == ["QUANTIZE", "DEQUANTIZE", "LOG_SOFTMAX", "QUANTIZE", "DEQUANTIZE"]


@pytest.mark.parametrize("name, fn", [("tanh", torch.tanh), ("sigmoid", torch.sigmoid)])
def test_pt2_tanh_and_sigmoid_onto_pytorchs_observed_grid(name, fn):
    """XNNPACK leaves tanh/sigmoid float between an observer's grids (not circle's fixed ones):
    onert profile, the float op then QUANTIZE onto PyTorch's grid; luci profile, the quantized op
    on circle's fixed grid then one requantization (within 1 LSB: the fixed step is under twice
    PyTorch's)."""
    kind = {"tanh": "TANH", "sigmoid": "LOGISTIC"}[name]
    onert = _convert(fn, "pt2")
    op, = _ops(onert, kind)
    assert op.outputs[0].dtype == "float32"
    luci = _convert(fn, "pt2", profile="luci")
    op, = _ops(luci, kind)
    assert op.outputs[0].qparams is not None
    fixed = {"TANH": (2.0 / 256, 128), "LOGISTIC": (1.0 / 256, 0)}[kind]
    assert (float(op.outputs[0].qparams.scale[0]), int(op.outputs[0].qparams.zero_point[0])) == fixed
    req = [q for q in _ops(luci, "QUANTIZE") if q.inputs[0] is op.outputs[0]]
    assert len(req) == 1 and float(req[0].outputs[0].qparams.scale[0]) == pytest.approx(0.03)


@pytest.mark.parametrize("name, fn", [("silu", F.silu), ("gelu", F.gelu), ("log_softmax", lambda v: F.log_softmax(v, 1)),
                                      ("softmax", lambda v: F.softmax(v, 1))])
def test_fx_float_islands_are_listed_and_strict_refuses_them(name, fn):
    """FX leaves these ops float between dequantize and quantize: listed in the notes, refused by
    --strict. (A PT2E op between a dequantize and a quantize is placed on PyTorch's grids by Q/DQ
    folding, so it is not listed there: only luci's verifier rule float_op names it.)"""
    conv = _convert(fn, "fx")
    assert any("stay float" in n and "(%s)" % name in n for n in conv.notes), conv.notes
    with pytest.raises(ConversionError, match="--strict"):
        _convert(fn, "fx", strict=True)


def test_gelu_with_an_unknown_approximation_is_refused():
    from onelib.pytorch_quant.ir import Graph, Op, QParams, Tensor
    from onelib.pytorch_quant.ops.ctx import LowerCtx
    from onelib.pytorch_quant.ops.registry import LOWERINGS
    x = Tensor("x", (1, 4), "uint8", QParams(np.float32(0.1), 0))
    y = Tensor("y", (1, 4), "uint8", QParams(np.float32(0.1), 0))
    ctx = LowerCtx(Graph(source="t"), api.ConvertOptions())
    ctx.define(x, x)
    with pytest.raises(ConversionError, match="approximate"):
        LOWERINGS["gelu"](ctx, Op("gelu", [x], [y], {"approximate": "erf"}, "g"))


@pytest.mark.parametrize("name, fn", [("tanh", torch.tanh), ("sigmoid", torch.sigmoid), ("hardsigmoid", F.hardsigmoid)])
def test_torchscript_fixed_grid_activation_on_a_float_input_stays_float(name, fn):
    """PyTorch's fixed output grids belong to the quantized ops; on a float input (an FX float
    island, float preprocessing) tanh/sigmoid/hardsigmoid are float ops, quantized once after."""
    from onelib.pytorch_quant.runtimes import run_tico
    conv = _convert(fn, "fx")
    kinds = [op.kind for op in conv.graph.ops]
    assert kinds.count("QUANTIZE") == 2, kinds   # the input's and the island's
    x = np.random.RandomState(5).randn(*SHAPE).astype(np.float32)
    want = _FxIsland(fn)(torch.from_numpy(x)).numpy()
    got = run_tico(conv.circle, [x])[0]
    assert int(np.rint(np.abs(got.astype(np.float64) - want) / 0.03).max()) <= 1
