"""Self-tests for the oracles (onert, TICO) and the quantized PyTorch test models.

The oracles are only worth something if they can fail, so the circle models here
are built by hand and checked against an independent numpy integer computation,
and broken models must produce errors that say why.
"""

import os
import tempfile
import warnings

import flatbuffers
import numpy as np
import pytest
import torch

from circle_schema.v0_10.circle.Buffer import BufferT
from circle_schema.v0_10.circle.BuiltinOperator import BuiltinOperator as BO
from circle_schema.v0_10.circle.BuiltinOptions import BuiltinOptions as BOpt
from circle_schema.v0_10.circle.FullyConnectedOptions import FullyConnectedOptionsT
from circle_schema.v0_10.circle.Model import ModelT
from circle_schema.v0_10.circle.Operator import OperatorT
from circle_schema.v0_10.circle.OperatorCode import OperatorCodeT
from circle_schema.v0_10.circle.QuantizationParameters import QuantizationParametersT
from circle_schema.v0_10.circle.SubGraph import SubGraphT
from circle_schema.v0_10.circle.Tensor import TensorT
from circle_schema.v0_10.circle.TensorType import TensorType as TT

from oracles import OracleError, lsb, lsb_stats, run_onert, run_tico
import qmodels as Q


# ----------------------------------------------------------------------------------
# A minimal circle writer, enough for FULLY_CONNECTED (+ QUANTIZE/DEQUANTIZE)
# ----------------------------------------------------------------------------------

_TT = {np.dtype(np.float32): TT.FLOAT32, np.dtype(np.uint8): TT.UINT8,
       np.dtype(np.int8): TT.INT8, np.dtype(np.int32): TT.INT32}


class _Circle:
    def __init__(self):
        self.tensors, self.ops, self.codes = [], [], []
        self.buffers = [BufferT()]  # buffer 0: the schema's empty sentinel

    def tensor(self, name, shape, dtype, data=None, scale=None, zp=None):
        t = TensorT()
        t.name, t.shape, t.type = name, list(shape), _TT[np.dtype(dtype)]
        buf = BufferT()
        if data is not None:
            data = np.ascontiguousarray(data, dtype=dtype)
            assert data.shape == tuple(shape)
            buf.data = np.frombuffer(data.tobytes(), dtype=np.uint8)
        self.buffers.append(buf)
        t.buffer = len(self.buffers) - 1
        if scale is not None:
            qp = QuantizationParametersT()
            qp.scale = [float(s) for s in np.atleast_1d(scale)]
            qp.zeroPoint = [int(z) for z in np.atleast_1d(0 if zp is None else zp)]
            qp.quantizedDimension = 0
            t.quantization = qp
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code, inputs, outputs, opt_type=0, opt=None):
        if code not in self.codes:
            self.codes.append(code)
        o = OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs, o.outputs = list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        self.ops.append(o)

    def finish(self, inputs, outputs):
        sg = SubGraphT()
        sg.tensors, sg.operators, sg.name = self.tensors, self.ops, "main"
        sg.inputs, sg.outputs = list(inputs), list(outputs)
        m = ModelT()
        m.version, m.subgraphs, m.buffers, m.description = 0, [sg], self.buffers, "test"
        m.operatorCodes = []
        for code in self.codes:
            oc = OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            m.operatorCodes.append(oc)
        fb = flatbuffers.Builder(1024)
        fb.Finish(m.Pack(fb), file_identifier=b"CIR0")
        return bytes(fb.Output())


def _fc_options():
    o = FullyConnectedOptionsT()
    o.fusedActivationFunction = 0
    return BOpt.FullyConnectedOptions, o


# Fixed FC problem: x [B,K] uint8 (0.03, 131); w [N,K] uint8 per-tensor.
_B, _K, _N = 3, 16, 8
_SX, _ZX, _SW, _ZW = 0.03, 131, 0.01, 120


def _fc_problem(seed=0):
    rng = np.random.RandomState(seed)
    w = rng.randint(0, 256, size=(_N, _K)).astype(np.uint8)
    bias = rng.randint(-3000, 3000, size=_N).astype(np.int32)
    sb = np.float32(_SX) * np.float32(_SW)  # bias scale rule, computed in float32 like luci
    # Output grid covering the real range reachable with random inputs.
    xs = rng.randint(0, 256, size=(64, _K))
    acc = (xs - _ZX) @ (w.astype(np.int64) - _ZW).T + bias
    lo, hi = min(acc.min(), 0) * sb, max(acc.max(), 0) * sb
    sy = float((hi - lo) / 255.0)
    zy = int(np.clip(np.round(-lo / sy), 0, 255))
    return w, bias, float(sb), sy, zy


def _fc_numpy(xq, w, bias, sy, zy):
    """Independent integer FC: int32 accumulate, real multiplier, round half away."""
    acc = (xq.astype(np.int64) - _ZX) @ (w.astype(np.int64) - _ZW).T + bias
    real = acc * (np.float64(np.float32(_SX) * np.float32(_SW)) / sy)
    return np.clip(np.sign(real) * np.floor(np.abs(real) + 0.5) + zy, 0, 255).astype(np.uint8)


def _build_fc_u8(w, bias, sb, sy, zy, act_dtype=np.uint8):
    c = _Circle()
    x = c.tensor("x", [_B, _K], act_dtype, scale=_SX, zp=_ZX if act_dtype == np.uint8 else 3)
    wt = c.tensor("w", [_N, _K], np.uint8, data=w, scale=_SW, zp=_ZW)
    bt = c.tensor("b", [_N], np.int32, data=bias, scale=sb, zp=0)
    y = c.tensor("y", [_B, _N], act_dtype, scale=sy, zp=zy if act_dtype == np.uint8 else 0)
    c.op(BO.FULLY_CONNECTED, [x, wt, bt], [y], *_fc_options())
    return c.finish([x], [y])


def _build_fc_float_io(w, bias, sb, sy, zy):
    c = _Circle()
    xf = c.tensor("x", [_B, _K], np.float32)
    xq = c.tensor("xq", [_B, _K], np.uint8, scale=_SX, zp=_ZX)
    wt = c.tensor("w", [_N, _K], np.uint8, data=w, scale=_SW, zp=_ZW)
    bt = c.tensor("b", [_N], np.int32, data=bias, scale=sb, zp=0)
    yq = c.tensor("yq", [_B, _N], np.uint8, scale=sy, zp=zy)
    yf = c.tensor("y", [_B, _N], np.float32)
    c.op(BO.QUANTIZE, [xf], [xq])
    c.op(BO.FULLY_CONNECTED, [xq, wt, bt], [yq], *_fc_options())
    c.op(BO.DEQUANTIZE, [yq], [yf])
    return c.finish([xf], [yf])


@pytest.fixture(scope="module")
def tmpdir_mod():
    with tempfile.TemporaryDirectory(prefix="oracle_test_") as d:
        yield d


# ----------------------------------------------------------------------------------
# Oracles on hand-built circle models
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_fc_u8_onert_and_tico_match_numpy(tmpdir_mod, seed):
    w, bias, sb, sy, zy = _fc_problem(seed)
    path = os.path.join(tmpdir_mod, "fc_u8_%d.circle" % seed)
    data = _build_fc_u8(w, bias, sb, sy, zy)
    with open(path, "wb") as f:
        f.write(data)
    xq = np.random.RandomState(100 + seed).randint(0, 256, size=(_B, _K)).astype(np.uint8)
    want = _fc_numpy(xq, w, bias, sy, zy)
    assert 0 < np.count_nonzero((want > 0) & (want < 255)), "test output saturated"

    (got_onert,) = run_onert(path, [xq])
    (got_tico,) = run_tico(data, [xq])
    (got_tico_path,) = run_tico(path, [xq])
    for got in (got_onert, got_tico, got_tico_path):
        assert got.dtype == np.uint8 and got.shape == (_B, _N)
        assert lsb(got, want) <= 1
    assert lsb(got_onert, got_tico) <= 1
    assert lsb_stats(got_onert, want)["exact_share"] >= 0.9


def test_fc_float_io_returns_float(tmpdir_mod):
    w, bias, sb, sy, zy = _fc_problem(0)
    path = os.path.join(tmpdir_mod, "fc_fio.circle")
    with open(path, "wb") as f:
        f.write(_build_fc_float_io(w, bias, sb, sy, zy))
    xq = np.random.RandomState(7).randint(0, 256, size=(_B, _K))
    xf = ((xq - _ZX) * np.float32(_SX)).astype(np.float32)   # on the input grid
    want = (_fc_numpy(xq, w, bias, sy, zy).astype(np.float32) - zy) * np.float32(sy)
    (got_onert,) = run_onert(path, [xf])
    (got_tico,) = run_tico(path, [xf])
    for got in (got_onert, got_tico):
        assert got.dtype == np.float32
        assert lsb(got, want, sy) <= 1


def test_tico_catches_wrong_bias_scale_onert_does_not(tmpdir_mod):
    # onert assumes bias scale = s_in * s_w and ignores the stored one (defect 7);
    # TICO honours it. This pins that the two oracles really are different.
    w, bias, sb, sy, zy = _fc_problem(0)
    good = _build_fc_u8(w, bias, sb, sy, zy)
    bad = _build_fc_u8(w, bias, sb * 4.0, sy, zy)
    paths = []
    for name, data in (("good", good), ("bad", bad)):
        paths.append(os.path.join(tmpdir_mod, "fc_bias_%s.circle" % name))
        with open(paths[-1], "wb") as f:
            f.write(data)
    xq = np.random.RandomState(3).randint(0, 256, size=(_B, _K)).astype(np.uint8)
    assert lsb(run_onert(paths[0], [xq])[0], run_onert(paths[1], [xq])[0]) == 0
    assert lsb(run_tico(good, [xq])[0], run_tico(bad, [xq])[0]) > 1


def test_run_onert_copies_non_circle_suffix(tmpdir_mod):
    w, bias, sb, sy, zy = _fc_problem(0)
    path = os.path.join(tmpdir_mod, "fc_model.bin")
    with open(path, "wb") as f:
        f.write(_build_fc_u8(w, bias, sb, sy, zy))
    xq = np.zeros((_B, _K), np.uint8)
    (got,) = run_onert(path, [xq])
    assert lsb(got, _fc_numpy(xq, w, bias, sy, zy)) <= 1


def test_run_onert_reports_unsupported_op(tmpdir_mod):
    # int8 FULLY_CONNECTED is rejected by onert 0.1.0's cpu backend (defect 6):
    # the reason exists only on the C++ side's stderr, which must reach the error.
    w, bias, sb, sy, zy = _fc_problem(0)
    c = _Circle()
    x = c.tensor("x", [_B, _K], np.int8, scale=_SX, zp=3)
    wt = c.tensor("w", [_N, _K], np.int8, data=w.view(np.int8), scale=_SW, zp=0)
    bt = c.tensor("b", [_N], np.int32, data=bias, scale=sb, zp=0)
    y = c.tensor("y", [_B, _N], np.int8, scale=sy, zp=0)
    c.op(BO.FULLY_CONNECTED, [x, wt, bt], [y], *_fc_options())
    path = os.path.join(tmpdir_mod, "fc_i8.circle")
    with open(path, "wb") as f:
        f.write(c.finish([x], [y]))
    with pytest.raises(OracleError) as ei:
        run_onert(path, [np.zeros((_B, _K), np.int8)])
    msg = str(ei.value)
    assert "fc_i8.circle" in msg and "FullyConnected" in msg, msg
    # ...while the TICO oracle runs what onert cannot.
    (got,) = run_tico(path, [np.zeros((_B, _K), np.int8)])
    assert got.dtype == np.int8


def test_run_onert_reports_garbage_file_and_bad_input(tmpdir_mod):
    path = os.path.join(tmpdir_mod, "garbage.circle")
    with open(path, "wb") as f:
        f.write(b"this is not a flatbuffer" * 8)
    # onert 0.1.0 segfaults while loading such a file: the subprocess must turn
    # that into an error, not take pytest down.
    with pytest.raises(OracleError) as ei:
        run_onert(path, [np.zeros((1,), np.uint8)])
    msg = str(ei.value)
    assert "garbage.circle" in msg and ("signal" in msg or "exit code" in msg), msg

    w, bias, sb, sy, zy = _fc_problem(0)
    good = os.path.join(tmpdir_mod, "fc_dtype.circle")
    with open(good, "wb") as f:
        f.write(_build_fc_u8(w, bias, sb, sy, zy))
    with pytest.raises(OracleError, match="model wants uint8"):
        run_onert(good, [np.zeros((_B, _K), np.float32)])
    with pytest.raises(OracleError, match="model wants uint8"):
        run_tico(good, [np.zeros((_B, _K), np.float32)])
    with pytest.raises(OracleError):
        run_tico(b"this is not a flatbuffer" * 8, [np.zeros((1,), np.uint8)])


def test_lsb_helpers():
    a = np.array([[0, 10, 255]], np.uint8)
    b = np.array([[1, 10, 250]], np.uint8)
    assert lsb(a, b) == 5                       # no uint8 wrap-around
    st = lsb_stats(a, b)
    assert st["max"] == 5 and abs(st["mean"] - 2.0) < 1e-12
    assert abs(st["exact_share"] - 1.0 / 3) < 1e-12
    s = 0.05
    fa = np.array([0.0, 0.5, 1.0], np.float32)
    fb = np.array([0.05, 0.5, 0.85], np.float32)
    assert lsb(fa, fb, s) == 3
    assert lsb_stats(fa, fb, s)["exact_share"] == pytest.approx(1.0 / 3)
    with pytest.raises(ValueError):
        lsb(a, b.reshape(3, 1))                 # no silent broadcasting
    with pytest.raises(TypeError):
        lsb(a, fa.reshape(1, 3), s)
    with pytest.raises(ValueError):
        lsb(fa, fb)                             # float without a scale


# ----------------------------------------------------------------------------------
# The quantized PyTorch test models
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", Q.ENGINES)
def test_grid_input_is_exact(engine):
    f, shape = Q.MODELS["classifier"]
    qm = Q.quantize_eager(f(), engine, shape)
    from tico.circle.runtime.quantization import round_half_away_from_zero

    s, zp = Q.input_qparams(qm)
    x = Q.grid_input(qm, (4, 3, 16, 16), seed=5)
    assert x.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qt = torch.quantize_per_tensor(torch.from_numpy(x), s, zp, torch.quint8)
    q_torch = qt.int_repr().numpy().astype(np.int64)
    # circle QUANTIZE rounds half away from zero, torch half to even: on the grid
    # both must give the same integers, and dequantizing must give x back.
    q_away = (round_half_away_from_zero(x.astype(np.float64) / s) + zp).astype(np.int64)
    assert np.array_equal(q_torch, q_away)
    assert np.array_equal(qt.dequantize().numpy(), x)
    assert q_torch.min() == 0 and q_torch.max() == 255
    assert Q.grid_input((s, zp), (4, 3, 16, 16), seed=5).tobytes() == x.tobytes()


_ALL = sorted(Q.all_models().items())


@pytest.mark.parametrize("engine", Q.ENGINES)
@pytest.mark.parametrize("name", [n for n, _ in _ALL])
def test_model_quantizes_traces_and_reloads(tmpdir_mod, name, engine):
    factory, shape = Q.all_models()[name]
    qm = Q.quantize_eager(factory(), engine, shape)
    x = Q.grid_input(qm, shape, seed=1)
    ref = Q.reference(qm, x, engine)
    s, zp = ref.qparams
    assert s > 0 and 0 <= zp <= 255
    # the float output is exactly the dequantized integer grid
    assert ref.q.min() >= 0 and ref.q.max() <= 255
    assert np.array_equal(((ref.q - zp) * np.float32(s)).astype(np.float32), ref.out)
    assert not np.all(ref.q == ref.q.flat[0]), "constant output is a useless reference"

    # Pitfall 13: the reference must not depend on tensor memory layout.
    hooks = [m.register_forward_hook(
        lambda mod, a, out: out.contiguous() if isinstance(out, torch.Tensor) else out)
        for m in qm.modules() if not list(m.children())]
    try:
        assert lsb(Q.reference(qm, x, engine).q, ref.q) == 0
    finally:
        for h in hooks:
            h.remove()

    path = os.path.join(tmpdir_mod, "%s_%s.pt" % (name, engine))
    Q.trace_and_save(qm, shape, path, engine=engine)
    with Q.engine_ctx(engine), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(path)
        y = loaded(torch.from_numpy(x)).numpy()
    assert Q.input_qparams(loaded) == Q.input_qparams(qm)
    assert np.array_equal(y, ref.out)


@pytest.mark.parametrize("engine", Q.ENGINES)
@pytest.mark.parametrize("name", sorted(Q.MODELS))
def test_fx_and_qat_variants(tmpdir_mod, name, engine):
    factory, shape = Q.MODELS[name]
    fx = Q.quantize_fx(factory(), engine, shape)
    x = Q.grid_input(fx, shape, seed=2)
    ref = Q.reference(fx, x, engine)
    with Q.engine_ctx(engine):
        assert np.array_equal(fx(torch.from_numpy(x)).numpy(), ref.out)
    # FX calibrates on the same batches, so it sees the same input range as eager.
    assert Q.input_qparams(fx) == Q.input_qparams(Q.quantize_eager(factory(), engine, shape))

    path = os.path.join(tmpdir_mod, "fx_%s_%s.pt" % (name, engine))
    Q.trace_and_save(fx, shape, path, engine=engine)
    with Q.engine_ctx(engine), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(torch.jit.load(path)(torch.from_numpy(x)).numpy(), ref.out)

    qat = Q.quantize_eager(factory(), engine, shape, qat=True)
    r = Q.reference(qat, Q.grid_input(qat, shape, seed=2), engine)
    assert r.out.shape == ref.out.shape and not np.all(r.q == r.q.flat[0])


def test_models_are_deterministic():
    f, shape = Q.MODELS["inverted_residual"]
    a, b = f(), f()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    torch.manual_seed(123)  # global RNG must not matter
    c = f()
    assert all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
