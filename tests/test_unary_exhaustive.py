"""Every input code through every quantized unary op: the converted circle against PyTorch.

A unary op on uint8 is a function of 256 codes, so it can be checked completely: each model is
QuantStub -> op -> DeQuantStub with the qparams set by hand, converted with uint8 I/O, fed all
256 input codes (as a 1x1x16x16 tensor) and compared code by code with PyTorch's own quantized
op on the same codes, for both quantized engines (their kernels differ: qnnpack has integer
lookup tables where x86 computes in float). This is the proof behind the compositions in
ops/activation.py and ops/elementwise.py (float islands for hardswish, hardsigmoid, elu,
leaky_relu; MAXIMUM/MINIMUM for relu6/hardtanh/clamp on onert) and behind the fixed-qparams
LOGISTIC/TANH.

Output qparams of the observed ops are what a MinMax observer would pick for the op's output
over the input grid, so the grids are realistic and never hand-tuned to pass.
"""
import os
import warnings

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized as nnq
import torch.nn as nn
import torch.nn.functional as F

import qmodels
from oracles import OracleError, run_onert, run_tico
from onelib.pytorch_quant import api
from onelib.pytorch_quant.verify import errors, verify_circle

SHAPE = (1, 1, 16, 16)
CODES = np.arange(256, dtype=np.uint8).reshape(SHAPE)

# input grids: symmetric wide (saturates every activation) and asymmetric narrow
GRIDS = {"wide": (8.0 / 128.0, 128), "narrow": (0.0173, 37)}

LIMIT = 1   # LSB of the output grid
MEASURED = {}  # (op, grid, engine, oracle) -> max LSB over the 256 codes


def _observed(fn, in_q):
    """The (scale, zero point) a quint8 MinMax observer gives fn's output over the input grid."""
    s, zp = in_q
    x = (np.arange(256) - zp).astype(np.float32) * np.float32(s)
    y = fn(torch.from_numpy(x)).numpy()
    lo, hi = min(float(y.min()), 0.0), max(float(y.max()), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    zero = int(np.clip(round(-lo / scale), 0, 255))
    return float(np.float32(scale)), zero


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _op(name, in_q):
    """(module applied to the quantized tensor, a note for the op table)."""
    if name == "hardswish":
        return nnq.Hardswish(*_observed(F.hardswish, in_q))
    if name == "hardsigmoid":
        return _Fn(F.hardsigmoid)                 # fixed grid 1/256, 0
    if name == "sigmoid":
        return _Fn(torch.sigmoid)                 # fixed grid 1/256, 0 -> LOGISTIC
    if name == "sigmoid_observed":
        q = _observed(torch.sigmoid, in_q)        # quantized::sigmoid on another grid -> float island
        return _Fn(lambda x: torch.ops.quantized.sigmoid(x, q[0], q[1]))
    if name == "tanh":
        return _Fn(torch.tanh)                    # fixed grid 2/256, 128 -> TANH
    if name == "elu":
        return nnq.ELU(*_observed(F.elu, in_q))
    if name == "elu_alpha":
        s, z = _observed(lambda t: F.elu(t, alpha=0.5), in_q)
        return nnq.ELU(s, z, alpha=0.5)
    if name == "leaky_relu":
        s, z = _observed(lambda t: F.leaky_relu(t, 0.1), in_q)
        return nnq.LeakyReLU(s, z, negative_slope=0.1)
    if name == "relu":
        return _Fn(F.relu)
    if name == "relu6":
        return _Fn(F.relu6)
    if name == "hardtanh":
        return _Fn(lambda x: F.hardtanh(x, -1.0, 1.0))
    if name == "hardtanh_0.2_2.5":
        return _Fn(lambda x: F.hardtanh(x, 0.2, 2.5))
    if name == "clamp":
        return _Fn(lambda x: torch.clamp(x, -0.5, 0.7))
    raise ValueError(name)


# no exact quantized form that luci's tools take (circle's ELU has no alpha; luci's fake
# quantization has no ELU): the luci profile keeps these float, and luci's type rule says so
LUCI_FLOAT = {"elu", "elu_alpha"}

# PyTorch itself refuses: qnnpack's sigmoid supports only the 1/256 output grid
NO_REFERENCE = {("sigmoid_observed", "qnnpack")}

OPS = ["hardswish", "hardsigmoid", "sigmoid", "sigmoid_observed", "tanh", "elu", "elu_alpha",
       "leaky_relu", "relu", "relu6", "hardtanh", "hardtanh_0.2_2.5", "clamp"]


class _Model(nn.Module):
    def __init__(self, op, in_q):
        super().__init__()
        self.quant = nnq.Quantize(in_q[0], in_q[1], torch.quint8)
        self.op = op
        self.dequant = nnq.DeQuantize()

    def forward(self, x):
        return self.dequant(self.op(self.quant(x)))


def _reference(op, in_q, engine):
    """PyTorch's output codes and grid for all 256 input codes under ``engine``."""
    with qmodels.engine_ctx(engine), torch.no_grad():
        qx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(CODES.copy()), in_q[0], in_q[1])
        y = op(qx)
        return y.int_repr().numpy(), (float(y.q_scale()), int(y.q_zero_point()))


@pytest.fixture(scope="module")
def circles(tmp_path_factory):
    """name, grid -> (circle path, op module): one conversion per op and grid, shared by engines."""
    tmp = tmp_path_factory.mktemp("unary")
    out = {}
    for grid, in_q in GRIDS.items():
        for name in OPS:
            op = _op(name, in_q)
            path = os.path.join(str(tmp), "%s_%s.pt" % (name, grid))
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")   # TracerWarning: qparams become constants, as intended
                traced = torch.jit.trace(_Model(op, in_q).eval(), torch.zeros(SHAPE), check_trace=False)
            torch.jit.save(traced, path)
            for profile in PROFILE_ORACLES:
                conv = api.convert(path, api.ConvertOptions(input_shapes=[list(SHAPE)], input_type="uint8",
                                                            output_type="uint8", profile=profile))
                cpath = "%s_%s.circle" % (path[:-3], profile)
                conv.save(cpath)
                out[(name, grid, profile)] = (cpath, op, conv)
    return out


# each profile's circle runs where it is meant to run: luci's form (quantized HARD_SWISH, integer
# hardsigmoid) on TICO's reference runtime, which onert cannot run; onert's on both
PROFILE_ORACLES = {"luci": ("tico",), "onert": ("onert", "tico")}


@pytest.mark.parametrize("profile", sorted(PROFILE_ORACLES))
@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("name", OPS)
def test_all_codes(circles, name, grid, profile):
    cpath, op, conv = circles[(name, grid, profile)]
    in_q = GRIDS[grid]
    # the circle keeps PyTorch's output grid (x86 and qnnpack agree on it)
    _, out_q = _reference(op, in_q, "x86")
    q = conv.graph.outputs[0].qparams
    assert conv.graph.outputs[0].dtype == "uint8"
    assert np.float32(q.scale[0]) == np.float32(out_q[0]) and int(q.zero_point[0]) == out_q[1], \
        "output grid changed: circle %r, PyTorch %r" % (q, out_q)
    got = {}
    for oracle in PROFILE_ORACLES[profile]:
        try:
            run = run_onert if oracle == "onert" else run_tico
            got[oracle] = run(cpath, [CODES])[0].astype(np.int64)
        except OracleError as e:
            pytest.fail("%s cannot run the %s lowering (%s profile): %s" % (oracle, name, profile, e))
    found = [str(f) for f in verify_circle(conv.circle, target="luci" if profile == "luci" else "onert")
             if f.severity == "error" or f.rule == "float_op"]
    if profile == "luci" and name in LUCI_FLOAT:
        assert found and all("[float_op]" in f for f in found), found
    else:
        assert not found, found
    for engine in qmodels.ENGINES:
        if (name, engine) in NO_REFERENCE:
            continue
        ref, _ = _reference(op, in_q, engine)
        ref = ref.astype(np.int64)
        for oracle, y in got.items():
            d = np.abs(y - ref)
            MEASURED[(name, grid, profile, engine, oracle)] = int(d.max())
            bad = np.nonzero(d.reshape(-1) > LIMIT)[0]
            assert bad.size == 0, "%s/%s (%s) %s vs PyTorch %s: %d codes off by > %d LSB, e.g. input code %d: %d vs %d" % (
                name, grid, profile, oracle, engine, bad.size, LIMIT, bad[0], y.reshape(-1)[bad[0]], ref.reshape(-1)[bad[0]])
