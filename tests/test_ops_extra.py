"""Op coverage beyond the basic set, one small quantized model per case, checked numerically.

Each case is an eager- (or FX-) quantized PyTorch model built here (QuantStub -> op(s) ->
DeQuantStub), traced and saved, converted with uint8 I/O and run on onert (the ONE runtime;
converted with --fc_as_conv, which onert's per-channel FC needs) and on TICO's reference runtime,
for the x86 and qnnpack engines. Inputs are PyTorch's own input codes; the outputs are compared
code by code with PyTorch's output codes: max |delta| <= 1 LSB of the output grid.

Where onert 0.1.0 has no kernel for the circle op (TRANSPOSE_CONV, RESIZE_NEAREST_NEIGHBOR) the
case says so and the test checks that onert still refuses, so an onert that learns the op is
noticed. Where PyTorch's own kernel is wrong for an engine (measured: x86 quantized
conv_transpose2d; qnnpack avg_pool2d with count_include_pad=False) the reference runs the same
saved model under the other engine (the file is repacked on load), which computes the op right.

Only the cases this session selected are built (``-k name`` builds one: tests/single_op.py), once
per module, with one onert subprocess for all of them; each test then only compares.
"""
import copy
import os
import warnings

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as nnq
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional

import qmodels as Q
from oracles import OracleError, run_tico
from single_op import RowError, run_rows, selected
from onelib.pytorch_quant import api
from onelib.pytorch_quant.errors import ConversionError
from onelib.pytorch_quant.verify import errors, verify_circle

LIMIT = 1  # LSB


# ------------------------------------------------------------------------------- models
class Net(Q.QModel):
    """QuantStub -> fn(self, x) -> DeQuantStub, with the given submodules."""

    def __init__(self, fn, mods=None, fuse=None, seed=0):
        super().__init__()
        self.fn = fn
        self._fuse = fuse or []
        for k, v in (mods or {}).items():
            setattr(self, k, v)
        Q._init_params(self, seed)
        g = torch.Generator().manual_seed(seed + 11)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.ConvTranspose2d, nn.Conv1d)):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.5 / m.weight[0].numel() ** 0.5))
                    if m.bias is not None:
                        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)

    def fuse_list(self):
        return self._fuse

    def body(self, x):
        return self.fn(self, x)


class SqueezeExcite(nn.Module):
    """MobileNetV3's SE: pool -> 1x1 conv -> relu -> 1x1 conv -> hardsigmoid -> scale x."""

    def __init__(self, c=8, r=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(c // r, c, 1)
        self.hsig = nn.Hardsigmoid()
        self.mul = FloatFunctional()

    def forward(self, x):
        return self.mul.mul(self.hsig(self.fc2(self.relu(self.fc1(self.pool(x))))), x)


def channel_shuffle(s, x, groups=2):
    n, c, h, w = x.size()
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


def _ff():
    return FloatFunctional()


# ------------------------------------------------------------------------------- recipes
def eager(m, engine, shape):
    return Q.quantize_eager(m, engine, shape)


def eager_per_tensor_weights(m, engine, shape):
    """ConvTranspose2d refuses per-channel weight observers in eager mode."""
    m = copy.deepcopy(m).eval()
    with Q.engine_ctx(engine), Q._quiet():
        m.qconfig = tq.QConfig(activation=tq.get_default_qconfig(engine).activation,
                               weight=tq.default_weight_observer)
        if m.fuse_list():
            tq.fuse_modules(m, m.fuse_list(), inplace=True)
        tq.prepare(m, inplace=True)
        with torch.no_grad():
            for b in Q._batches(shape, 0):
                m(b)
        tq.convert(m, inplace=True)
    return m


def fx(m, engine, shape):
    return Q.quantize_fx(m, engine, shape)


def with_softmax(scale, zero_point, dim):
    """Eager mode has no default mapping for nn.Softmax: put the quantized module in by hand."""
    def recipe(m, engine, shape):
        q = Q.quantize_eager(m, engine, shape)
        q.sm = nnq.Softmax(dim=dim, scale=scale, zero_point=zero_point)
        return q
    return recipe


class Case(object):
    def __init__(self, name, fn, mods=None, shape=(1, 4, 8, 8), recipe=eager, fuse=None, ops=(),
                 onert=None, ref_engine=None, options=None, error=None, tweak=None):
        self.name, self.fn, self.mods, self.shape = name, fn, mods, shape
        self.tweak = tweak            # edits the float model's parameters after the seeded init
        self.recipe, self.fuse = recipe, fuse
        self.ops = ops                # circle op kinds the lowering must use
        self.onert = onert            # None: must run; "text": onert must refuse with this in its message
        self.ref_engine = ref_engine or {}  # engine -> engine whose kernel is right for the reference
        self.options = options or {}
        self.error = error            # conversion must refuse with this text

    def model(self):
        mods = self.mods() if callable(self.mods) else None
        m = Net(self.fn, mods, self.fuse)
        if self.tweak is not None:
            with torch.no_grad():
                self.tweak(m)
        return m


# onert's loader refuses TRANSPOSE_CONV with a bias input (without one: "NYI for operation
# 'TransposeConv'" at prepare); luci and TICO take the bias as the 4th input
ONERT_NO_TCONV = "Invalid number of input tensors"
QNNPACK_AVG_EXCLUDE_PAD = {"qnnpack": "x86"}   # qnnpack divides by the full window (measured 31-53 LSB)
X86_CONV_TRANSPOSE = {"x86": "qnnpack"}        # x86 quantized conv_transpose2d: up to 255 LSB off


def _mods(**kw):
    return lambda: {k: (v() if callable(v) and not isinstance(v, nn.Module) else v) for k, v in kw.items()}


CASES = [
    # ---- activations (every input code: test_unary_exhaustive.py)
    Case("hardsigmoid", lambda s, x: s.act(x), _mods(act=nn.Hardsigmoid), ops=("ADD", "MUL")),
    Case("tanh", lambda s, x: s.act(x), _mods(act=nn.Tanh), ops=("TANH",)),
    Case("sigmoid", lambda s, x: s.act(x), _mods(act=nn.Sigmoid), ops=("LOGISTIC",)),
    Case("leaky_relu", lambda s, x: s.act(x), _mods(act=lambda: nn.LeakyReLU(0.1)), ops=("LEAKY_RELU",)),
    Case("elu", lambda s, x: s.act(x), _mods(act=nn.ELU), ops=("EXP",)),
    Case("elu_alpha", lambda s, x: s.act(x), _mods(act=lambda: nn.ELU(alpha=0.5)), ops=("EXP",)),
    Case("clamp", lambda s, x: torch.clamp(x, -0.5, 0.7), ops=("MAXIMUM", "MINIMUM")),
    Case("relu6_standalone", lambda s, x: F.relu6(x), ops=("MAXIMUM", "MINIMUM")),
    # softmax: quantized SOFTMAX on the fixed grid; on another grid (luci profile) SOFTMAX on the
    # fixed grid and one integer QUANTIZE onto PyTorch's
    Case("softmax_fixed_grid", lambda s, x: s.sm(x), _mods(sm=lambda: nn.Softmax(1)),
         recipe=with_softmax(1.0 / 256.0, 0, 1), ops=("SOFTMAX",)),
    Case("softmax_observed_grid", lambda s, x: s.sm(x), _mods(sm=lambda: nn.Softmax(1)),
         recipe=with_softmax(0.0045, 3, 1), ops=("SOFTMAX", "QUANTIZE")),
    Case("softmax_luci_scale", lambda s, x: s.sm(x), _mods(sm=lambda: nn.Softmax(1)),
         recipe=with_softmax(1.0 / 256.0, 0, 1), options={"softmax_scale": "1/255"},
         ops=("SOFTMAX", "QUANTIZE")),
    Case("softmax_last_dim", lambda s, x: s.sm(x), _mods(sm=lambda: nn.Softmax(-1)),
         recipe=with_softmax(1.0 / 256.0, 0, -1), ops=("TRANSPOSE", "SOFTMAX")),
    Case("softmax_2d", lambda s, x: s.sm(x.flatten(1)), _mods(sm=lambda: nn.Softmax(1)), shape=(2, 4, 2, 2),
         recipe=with_softmax(1.0 / 256.0, 0, 1), ops=("SOFTMAX",)),
    Case("softmax_fx", lambda s, x: s.sm(s.conv(x)), _mods(conv=lambda: nn.Conv2d(4, 6, 1), sm=lambda: nn.Softmax(1)),
         recipe=fx, ops=("SOFTMAX",)),
    # ---- squeeze-excitation: broadcast MUL [N,C,1,1] x [N,C,H,W]
    Case("squeeze_excite", lambda s, x: s.se(x), _mods(se=SqueezeExcite), shape=(1, 8, 8, 8),
         ops=("AVERAGE_POOL_2D", "MUL")),
    Case("squeeze_excite_fx", lambda s, x: s.se(x), _mods(se=SqueezeExcite), shape=(1, 8, 8, 8), recipe=fx),
    # ---- layout
    Case("channel_shuffle", channel_shuffle, ops=("TRANSPOSE", "RESHAPE")),
    Case("permute_nhwc", lambda s, x: x.permute(0, 2, 3, 1).contiguous(), ops=("TRANSPOSE",)),
    Case("transpose_hw", lambda s, x: x.transpose(2, 3), ops=("TRANSPOSE",)),
    Case("transpose_3d_tokens", lambda s, x: x.flatten(2).transpose(1, 2), ops=("TRANSPOSE",)),
    Case("unsqueeze_squeeze", lambda s, x: x.flatten(2).unsqueeze(2).squeeze(0), ops=("RESHAPE",)),
    Case("chunk_channels", lambda s, x: s.ff.cat(list(x.chunk(2, dim=1))[::-1], 1), _mods(ff=_ff), ops=("SPLIT",)),
    Case("chunk_uneven_h", lambda s, x: torch.cat(list(x.chunk(3, dim=2))[::-1], 2), ops=("SLICE",)),
    Case("split_sizes_c", lambda s, x: torch.cat(list(torch.split(x, [1, 3], dim=1))[::-1], 1), ops=("SLICE",)),
    Case("split_w", lambda s, x: torch.cat(list(torch.split(x, 4, dim=3))[::-1], 3), ops=("SPLIT",)),
    # ---- broadcasting add / mul
    Case("mul_bcast_nc11", lambda s, x: s.ff.mul(x, s.pool(x)), _mods(ff=_ff, pool=lambda: nn.AdaptiveAvgPool2d(1))),
    Case("add_bcast_n1hw", lambda s, x: s.ff.add(x, torch.mean(x, 1, keepdim=True)), _mods(ff=_ff)),
    Case("add_bcast_nch1", lambda s, x: s.ff.add(s.pool(x), x), _mods(ff=_ff, pool=lambda: nn.AdaptiveAvgPool2d((None, 1)))),
    Case("mul_bcast_rank3", lambda s, x: s.ff.mul(x, s.pool(x).squeeze(0)), _mods(ff=_ff, pool=lambda: nn.AdaptiveAvgPool2d(1))),
    # ---- cat of inputs on different grids, along every dim
    Case("cat_dim1", lambda s, x: s.ff.cat([x, s.conv(x)], 1), _mods(ff=_ff, conv=lambda: nn.Conv2d(4, 4, 1))),
    Case("cat_dim2", lambda s, x: s.ff.cat([x, s.conv(x)], 2), _mods(ff=_ff, conv=lambda: nn.Conv2d(4, 4, 1))),
    Case("cat_dim3", lambda s, x: s.ff.cat([s.conv(x), x], 3), _mods(ff=_ff, conv=lambda: nn.Conv2d(4, 4, 1))),
    Case("cat_three_grids", lambda s, x: s.ff.cat([x, s.conv(x), s.conv2(x)], 2),
         _mods(ff=_ff, conv=lambda: nn.Conv2d(4, 4, 1), conv2=lambda: nn.Conv2d(4, 4, 3, padding=1))),
    # ---- interpolate (nearest: RESIZE_NEAREST_NEIGHBOR in luci's form; the onert profile, which
    # these cases run on onert, writes PyTorch's index table as two GATHERs: onert has no such op)
    Case("nearest_x2", lambda s, x: F.interpolate(x, scale_factor=2, mode="nearest"),
         ops=("RESIZE_NEAREST_NEIGHBOR",)),
    Case("nearest_x3", lambda s, x: F.interpolate(x, scale_factor=3, mode="nearest"),
         ops=("RESIZE_NEAREST_NEIGHBOR",)),
    Case("nearest_size", lambda s, x: F.interpolate(x, size=(11, 13), mode="nearest"),
         ops=("RESIZE_NEAREST_NEIGHBOR",)),
    Case("nearest_exact_x2", lambda s, x: F.interpolate(x, scale_factor=2, mode="nearest-exact"),
         ops=("RESIZE_NEAREST_NEIGHBOR",)),
    Case("nearest_x1.7_gather", lambda s, x: F.interpolate(x, scale_factor=1.7, mode="nearest"), ops=("GATHER",)),
    Case("bilinear_x2", lambda s, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
         ops=("RESIZE_BILINEAR",)),
    Case("bilinear_x2_align", lambda s, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True),
         ops=("RESIZE_BILINEAR",)),
    Case("bilinear_size", lambda s, x: F.interpolate(x, size=(11, 13), mode="bilinear", align_corners=False),
         ops=("RESIZE_BILINEAR",)),
    Case("bilinear_size_align", lambda s, x: F.interpolate(x, size=(11, 13), mode="bilinear", align_corners=True),
         ops=("RESIZE_BILINEAR",)),
    Case("bilinear_x1.7", lambda s, x: F.interpolate(x, scale_factor=1.7, mode="bilinear", align_corners=False),
         error="cannot express"),
    # ---- transposed conv, conv1d, standalone batch norm
    Case("conv_transpose_k3s2p1op1", lambda s, x: s.c(x),
         _mods(c=lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)),
         recipe=eager_per_tensor_weights, ops=("TRANSPOSE_CONV", "SLICE"), onert=ONERT_NO_TCONV,
         ref_engine=X86_CONV_TRANSPOSE),
    Case("conv_transpose_k2s2", lambda s, x: s.c(x), _mods(c=lambda: nn.ConvTranspose2d(4, 6, 2, stride=2)),
         recipe=eager_per_tensor_weights, ops=("TRANSPOSE_CONV",), onert=ONERT_NO_TCONV,
         ref_engine=X86_CONV_TRANSPOSE),
    Case("conv_transpose_k4s2p1", lambda s, x: s.c(x),
         _mods(c=lambda: nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1)),
         recipe=eager_per_tensor_weights, ops=("TRANSPOSE_CONV", "SLICE"), onert=ONERT_NO_TCONV,
         ref_engine=X86_CONV_TRANSPOSE),
    Case("conv_transpose_groups", lambda s, x: s.c(x),
         _mods(c=lambda: nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2)),
         recipe=eager_per_tensor_weights, ops=("SPLIT", "TRANSPOSE_CONV", "CONCATENATION"), onert=ONERT_NO_TCONV,
         ref_engine=X86_CONV_TRANSPOSE),
    Case("conv_transpose_dilation", lambda s, x: s.c(x),
         _mods(c=lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, dilation=2)),
         recipe=eager_per_tensor_weights, ops=("TRANSPOSE_CONV",), onert=ONERT_NO_TCONV,
         ref_engine=X86_CONV_TRANSPOSE),
    Case("conv1d", lambda s, x: s.c(x), _mods(c=lambda: nn.Conv1d(4, 6, 3, padding=1)), shape=(1, 4, 16),
         ops=("CONV_2D",)),
    Case("conv1d_k5s2", lambda s, x: s.c(x), _mods(c=lambda: nn.Conv1d(4, 6, 5, stride=2, padding=2)),
         shape=(2, 4, 16)),
    Case("conv1d_depthwise", lambda s, x: s.c(x), _mods(c=lambda: nn.Conv1d(4, 4, 3, padding=1, groups=4)),
         shape=(1, 4, 16), ops=("DEPTHWISE_CONV_2D",)),
    Case("conv1d_relu_fused", lambda s, x: s.r(s.c(x)), _mods(c=lambda: nn.Conv1d(4, 6, 3, padding=1), r=nn.ReLU),
         shape=(1, 4, 16), fuse=[["c", "r"]]),
    Case("batch_norm2d", lambda s, x: s.bn(x), _mods(bn=lambda: nn.BatchNorm2d(4)), ops=("DEPTHWISE_CONV_2D",)),
    Case("batch_norm2d_signed_gamma", lambda s, x: s.bn(x), _mods(bn=lambda: nn.BatchNorm2d(4)),
         tweak=lambda m: m.bn.weight.copy_(torch.tensor([-0.8, 0.0, 1.3, -2.0])), ops=("DEPTHWISE_CONV_2D",)),
    Case("batch_norm2d_relu", lambda s, x: s.r(s.bn(x)), _mods(bn=lambda: nn.BatchNorm2d(4), r=nn.ReLU),
         fuse=[["bn", "r"]], ops=("DEPTHWISE_CONV_2D",)),
    # ---- pooling
    Case("max_pool_ceil", lambda s, x: F.max_pool2d(x, 3, 2, ceil_mode=True), ops=("MAX_POOL_2D",)),
    Case("max_pool_ceil_pad", lambda s, x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True), ops=("MAX_POOL_2D",)),
    Case("avg_pool_include_pad", lambda s, x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=True)),
    Case("avg_pool_exclude_pad", lambda s, x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False),
         ref_engine=QNNPACK_AVG_EXCLUDE_PAD),
    Case("avg_pool_exclude_pad_s1", lambda s, x: F.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False),
         ref_engine=QNNPACK_AVG_EXCLUDE_PAD),
    Case("avg_pool_ceil", lambda s, x: F.avg_pool2d(x, 3, 2, ceil_mode=True), ops=("SLICE", "CONCATENATION")),
    Case("avg_pool_ceil_pad_include", lambda s, x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True)),
    Case("avg_pool_ceil_pad_exclude",
         lambda s, x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False)),
    # ---- padding
    Case("pad_zero", lambda s, x: F.pad(x, (1, 2, 0, 1)), ops=("PAD",)),
    Case("pad_value", lambda s, x: F.pad(x, (1, 2, 0, 1), value=0.5), ops=("CONCATENATION",)),
    Case("pad_channels", lambda s, x: F.pad(x, (0, 0, 0, 0, 1, 2), value=-0.3), ops=("CONCATENATION",)),
    # ---- linear on a 3-D input
    Case("linear_3d", lambda s, x: s.fc(x), _mods(fc=lambda: nn.Linear(16, 5)), shape=(2, 4, 16),
         ops=("FULLY_CONNECTED", "RESHAPE")),
    Case("linear_3d_per_tensor", lambda s, x: s.fc(x), _mods(fc=lambda: nn.Linear(16, 5)), shape=(1, 4, 16),
         recipe=eager_per_tensor_weights),
]
BY_NAME = dict((c.name, c) for c in CASES)
assert len(BY_NAME) == len(CASES)


# ------------------------------------------------------------------------------- running
def _qmax(engine):
    # x86 calibrates activations to 0..127 (reduce_range): stay inside, its kernels assume it
    return 127 if engine == "x86" else 255


def _reference_codes(case, q, path, x, engine):
    """PyTorch's output codes for x, and the output grid."""
    ref = Q.reference(q, x, engine)
    other = case.ref_engine.get(engine)
    if other is None:
        return ref.q, ref.qparams
    with Q.engine_ctx(other), torch.no_grad():
        out = torch.jit.load(path)(torch.from_numpy(x)).numpy()
    s, zp = ref.qparams
    return (np.rint(out.astype(np.float64) / s) + zp).astype(np.int64), ref.qparams


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """(case, engine) -> dict(ops, onert, tico, ref, qparams) or dict(error=exception), for the
    (case, engine) pairs this session selected."""
    tmp = str(tmp_path_factory.mktemp("ops_extra"))

    def build(row):
        name, engine = row
        case = BY_NAME[name]
        key = (case.name, engine)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q = case.recipe(case.model(), engine, case.shape)
                path = os.path.join(tmp, "%s_%s.pt" % key)
                Q.trace_and_save(q, case.shape, path, engine=engine)
                x = Q.grid_input(q, case.shape, seed=3, qmax=_qmax(engine))
                s, zp = Q.input_qparams(q)
                xq = (np.rint(x / np.float32(s)) + zp).astype(np.uint8)
                opts = dict(input_shapes=[list(case.shape)], input_type="uint8", output_type="uint8")
                opts.update(case.options)
                if case.error:
                    with pytest.raises(ConversionError) as e:
                        api.convert(path, api.ConvertOptions(**opts))
                    return key, {"refused": str(e.value)}, None
                conv = api.convert(path, api.ConvertOptions(**opts))
                onert_conv = api.convert(path, api.ConvertOptions(fc_as_conv=True, **opts))
                cpath = os.path.join(tmp, "%s_%s.circle" % key)
                onert_conv.save(cpath)
                ref, ref_q = _reference_codes(case, q, path, x, engine)
            r = {"ops": [op.kind for op in conv.graph.ops], "ref": ref, "qparams": ref_q,
                 "out_q": conv.graph.outputs[0].qparams,
                 "luci": [str(f) for f in errors(verify_circle(conv.circle, target="luci"))]}
            try:
                r["tico"] = run_tico(conv.circle, [xq])[0]
            except OracleError as e:
                r["tico"] = e
            return key, r, (cpath, [xq])
        except Exception as e:  # reported by the case's own test
            raise RowError(key, e)

    def take_onert(r, out):
        r["onert"] = out if isinstance(out, Exception) else out[0]

    return run_rows(selected(request, __name__, ("name", "engine")), build, take_onert, timeout=600)


MEASURED = {}  # (case, engine, oracle) -> max LSB, printed by test_print_lsb_table


def _check(r, oracle, case, engine):
    y = r[oracle]
    if isinstance(y, Exception):
        raise y
    ref = r["ref"]
    assert y.dtype == np.uint8 and y.shape == ref.shape, (y.dtype, y.shape, ref.shape)
    d = np.abs(y.astype(np.int64) - ref)
    MEASURED[(case.name, engine, oracle)] = int(d.max())
    assert int(d.max()) <= LIMIT, "%s/%s: %s is %d LSB from PyTorch (%d of %d outputs off)" % (
        case.name, engine, oracle, d.max(), int(np.count_nonzero(d > LIMIT)), d.size)


@pytest.mark.parametrize("engine", Q.ENGINES)
@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_op(runs, name, engine):
    case = BY_NAME[name]
    r = runs[(name, engine)]
    if "error" in r:
        raise r["error"]
    if case.error:
        assert case.error in r["refused"], r["refused"]
        return
    for kind in case.ops:
        assert kind in r["ops"], "%s: expected %s in %s" % (name, kind, r["ops"])
    assert not r["luci"], "%s: breaks luci's rules: %s" % (name, r["luci"])
    # the circle output keeps PyTorch's grid
    s, zp = r["qparams"]
    assert np.float32(r["out_q"].scale[0]) == np.float32(s) and int(r["out_q"].zero_point[0]) == zp
    _check(r, "tico", case, engine)
    if case.onert is None:
        _check(r, "onert", case, engine)
    else:
        y = r["onert"]
        assert isinstance(y, OracleError) and case.onert in str(y), \
            "%s: onert was expected to refuse (%s) but %s; update the op table" % (
                name, case.onert, "ran" if not isinstance(y, Exception) else "failed otherwise: %s" % y)
