"""The running half of the op parameter sweep (the table is tests/sweep.py, which describes it):
a case's model built in code, quantized per frontend, converted, run on TICO and onert, and
compared with PyTorch in LSB (``run_cases``)."""
import os
import warnings

import numpy as np
import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F

import qmodels as Q
from single_op import RowError, run_rows
from onelib.pytorch_quant import api, hazards, runtimes
from onelib.pytorch_quant.errors import ConversionError

LIMIT = 1                     # LSB of the output grid, per op fed PyTorch's own integer inputs
EAGER = ("x86", "qnnpack")
PT2E = ("xnnpack",)
ALL_FRONTENDS = EAGER + PT2E
# FX graph mode (x86 qconfig mapping), traced: the form of ops FX leaves float between a
# dequantize and a quantize_per_tensor (silu, gelu, softmax ...). Listed per case, not in ALL_FRONTENDS.
FX = ("fx",)
SEED = 20261206               # the default sample; fixed so a run is repeatable

# onert 0.1.0 has no kernel for these circle ops: such circles are checked on TICO only
ONERT_MISSING = ("TRANSPOSE_CONV", "RESIZE_NEAREST_NEIGHBOR")
# PyTorch's own kernels that are wrong (measured, tests/test_ops_extra.py): reference from the other
QNNPACK_AVG_EXCLUDE_PAD = {"qnnpack": "x86"}   # qnnpack avg_pool2d ignores count_include_pad=False
QNNPACK_AVG_DIVISOR = {"qnnpack": "x86"}       # ... and divisor_override (divides by the window: 20-90 LSB)
X86_CONV_TRANSPOSE = {"x86": "qnnpack"}        # x86 quantized conv_transpose2d: up to 255 LSB off
# qnnpack max_pool2d with dilation > 1, padding and ceil_mode=False: up to 232 LSB from the float
# op on the same codes (x86 agrees with it exactly; measured with torch 2.13)
QNNPACK_DILATED_MAX_PAD = {"qnnpack": "x86"}
# x86 depthwise conv whose padding is at least the kernel (windows wholly in the padding): up to
# 190 LSB from the float conv of the same integers; qnnpack is within 1 (measured, torch 2.13)
X86_CONV_PAD_GE_KERNEL = {"x86": "qnnpack"}


class Case(object):
    """One op, one parameter set, one input shape, on the frontends listed."""

    def __init__(self, op, params, shape, fn, mods=None, frontends=EAGER, refuse=None, ref_engine=None,
                 recipe="eager", pt2_pre=True, calib=(1.0, 0.0), all_codes=False):
        self.op, self.params, self.shape, self.fn, self.mods = op, params, tuple(shape), fn, mods
        self.calib = calib              # calibration data a * N(0, 1) + b: picks the input grid
        self.all_codes = all_codes      # feed every input code 0..255 (shape of 256 elements)
        self.frontends = tuple(frontends)
        self.refuse = refuse            # text of the ConversionError this combination must give
        self.ref_engine = ref_engine or {}
        self.recipe = recipe            # "eager" | "eager_per_tensor_weights"
        self.pt2_pre = pt2_pre          # PT2E: put an identity adaptive_avg_pool2d in front, so an op
        #                                 XNNPACK only annotates after a quantized producer is quantized
        self.id = "%s[%s]%s" % (op, ",".join("%s=%s" % kv for kv in sorted(params.items())),
                                "x".join(str(s) for s in self.shape))


# ------------------------------------------------------------------------------ models
class Net(Q.QModel):
    """QuantStub -> fn(self, x) -> DeQuantStub, with the given submodules (eager recipes)."""

    def __init__(self, fn, mods=None, seed=0):
        super().__init__()
        _attach(self, fn, mods, seed)

    def body(self, x):
        return self.fn(self, x)


class Plain(nn.Module):
    """fn(self, x) with no stubs (PT2E: the quantizer places quantize/dequantize)."""

    def __init__(self, fn, mods=None, pre=None, seed=0):
        super().__init__()
        self.pre = pre
        _attach(self, fn, mods, seed)

    def forward(self, x):
        if self.pre is not None:
            x = F.adaptive_avg_pool2d(x, self.pre)   # windows of 1: the identity, quantized by XNNPACK
        return self.fn(self, x)


class FxNet(nn.Module):
    """fn(self, x) between two one-input ``torch.cat``: the identity, which FX quantizes (its
    input and output observers are shared), so FX quantizes the op's input and output."""

    def __init__(self, fn, mods=None, seed=0):
        super().__init__()
        _attach(self, fn, mods, seed)

    def forward(self, x):
        return torch.cat([self.fn(self, torch.cat([x], 0))], 0)


def _attach(model, fn, mods, seed):
    """The case's function and submodules on ``model``, then the seeded weights (every wrapper)."""
    model.fn = fn
    for k, v in (mods or {}).items():
        setattr(model, k, v)
    _init(model, seed)


def _init(model, seed):
    Q._init_params(model, seed)
    g = torch.Generator().manual_seed(seed + 11)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv1d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.5 / m.weight[0].numel() ** 0.5))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)


def _eager(case, engine):
    m = Net(case.fn, case.mods() if case.mods else None).eval()
    a, b = case.calib
    with Q.engine_ctx(engine), Q._quiet():
        qc = tq.get_default_qconfig(engine)
        if case.recipe == "eager_per_tensor_weights":
            # ConvTranspose2d refuses per-channel weight observers in eager mode
            qc = tq.QConfig(activation=qc.activation, weight=tq.default_weight_observer)
        m.qconfig = qc
        tq.prepare(m, inplace=True)
        with torch.no_grad():
            for x in Q._batches(case.shape, 0):
                m(x * a + b)
        tq.convert(m, inplace=True)
    return m


def _fx(case):
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    m = FxNet(case.fn, case.mods() if case.mods else None).eval()
    a, b = case.calib
    with Q.engine_ctx("x86"), Q._quiet():
        batches = Q._batches(case.shape, 0)
        p = prepare_fx(m, tq.get_default_qconfig_mapping("x86"), (batches[0],))
        with torch.no_grad():
            for x in batches:
                p(x * a + b)
        return convert_fx(p)


def _qmax(engine):
    # x86 calibrates activations to 0..127 (reduce_range): stay inside, its kernels assume it
    return 127 if engine == "x86" else 255


# ------------------------------------------------------------------------------ running
def _run_eager(case, engine, tmp):
    """dict(conv, jobs: [(oracle, circle, inputs)], ref codes, ...) for one eager case (or an FX
    case: engine "fx", run under x86)."""
    key, frontend = "%s_%s" % (_safe(case.id), engine), engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if engine in FX:
            q, engine = _fx(case), "x86"
        else:
            q = _eager(case, engine)
        path = os.path.join(tmp, key + ".pt")
        Q.trace_and_save(q, case.shape, path, engine=engine)
        x = Q.grid_input(q, case.shape, seed=3, qmax=_qmax(engine))
    s, zp = Q.input_qparams(q)
    if case.all_codes:
        # every input code (x86 as well: these single ops do not assume reduce_range inputs)
        x = ((np.arange(256).reshape(case.shape) - zp) * np.float32(s)).astype(np.float32)
    xq = (np.rint(x / np.float32(s)) + zp).astype(np.uint8)
    opts = dict(input_shapes=[list(case.shape)], input_type="uint8", output_type="uint8", profile="onert")
    if case.refuse:
        return {"refused": _refusal(path, opts)}
    conv = api.convert(path, api.ConvertOptions(**opts))
    opts["profile"] = "luci"
    conv_luci = api.convert(path, api.ConvertOptions(**opts))
    ref = Q.reference(q, x, engine)
    codes = ref.q
    other = case.ref_engine.get(frontend)
    if other is not None:
        with Q.engine_ctx(other), torch.no_grad():
            out = torch.jit.load(path)(torch.from_numpy(x)).numpy()
        codes = (np.rint(out.astype(np.float64) / ref.qparams[0]) + ref.qparams[1]).astype(np.int64)
    return {"conv": conv, "conv_luci": conv_luci, "inputs": [xq], "ref": codes, "unit": None,
            "qparams": ref.qparams}


def _run_pt2e(case, tmp):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

    import pt2models as M

    key = "%s_xnnpack" % _safe(case.id)
    pre = list(case.shape[2:]) if case.pt2_pre and len(case.shape) == 4 else None
    model = Plain(case.fn, case.mods() if case.mods else None, pre).eval()
    g = torch.Generator().manual_seed(1)
    example = (torch.randn(case.shape, generator=g),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = torch.export.export(model, example, strict=True).module()
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(gm, quantizer)
        a, b = case.calib
        with torch.no_grad():
            for _ in range(6):
                prepared(torch.randn(case.shape, generator=g) * a + b)
        ep = torch.export.export(convert_pt2e(prepared), example)
    q = M.Quantized(case.id, "xnnpack", ep, [case.shape])
    path = q.save(os.path.join(tmp, key + ".pt2"))
    scale = q.output_scale()[0]
    if scale is None:
        raise AssertionError("%s: XNNPACK leaves this op in float; the case should not list xnnpack" % case.id)
    opts = dict(profile="onert")
    if case.refuse:
        return {"refused": _refusal(path, opts)}
    x = M.grid_inputs(q)
    conv = api.convert(path, api.ConvertOptions(**opts))
    conv_luci = api.convert(path, api.ConvertOptions(profile="luci"))
    return {"conv": conv, "conv_luci": conv_luci, "inputs": x, "ref": q.reference(x)[0], "unit": scale}


def _refusal(path, opts):
    try:
        api.convert(path, api.ConvertOptions(**opts))
    except ConversionError as e:
        return str(e)
    return None


def _safe(s):
    return "".join(ch if ch.isalnum() or ch in "-_=" else "_" for ch in s)


def onert_gap(conv):
    """Why onert 0.1.0 cannot run this circle (no kernel, or a measured wrong answer), or None."""
    for view in hazards.ir_ops(conv.graph):
        if view.kind in ONERT_MISSING:
            return "onert 0.1.0 has no %s kernel" % view.kind
        if hazards.SLICE_5D.check(view):
            return "onert 0.1.0 computes a 5-D SLICE wrongly"
    return None


def circle_kinds(conv):
    return [op.kind for op in conv.graph.ops]


def lsb_diff(y, ref, unit):
    """Per-element |y - ref| in LSB: integer codes, or floats on a grid of step ``unit``."""
    y = np.asarray(y)
    if y.shape != ref.shape:
        raise AssertionError("shape %s, PyTorch %s" % (y.shape, ref.shape))
    if unit is None:
        return np.abs(y.astype(np.int64) - ref.astype(np.int64))
    return np.rint(np.abs(y.astype(np.float64) - ref.astype(np.float64)) / unit).astype(np.int64)


def run_cases(items, tmp, onert=True):
    """items: [(case, frontend)] -> {(case.id, frontend): result dict}.

    A result holds ``refused`` (the ConversionError text, or None when it converted), or
    ``lsb`` {oracle: max LSB or the exception} and ``kinds`` (circle ops), or ``error``.
    """
    def build(item):
        case, fe = item
        key = (case.id, fe)
        try:
            r = _run_pt2e(case, tmp) if fe in PT2E else _run_eager(case, fe, tmp)
        except Exception as e:  # reported by the case's own test
            raise RowError(key, e)
        if "refused" in r:
            return key, r, None
        # each profile where it is meant to run: luci's form on TICO, onert's on onert and TICO
        conv, conv_luci = r.pop("conv"), r.pop("conv_luci")
        r["kinds"] = circle_kinds(conv)
        r["lsb"] = {}
        for label, c in (("tico", conv_luci), ("tico_onert_profile", conv)):
            try:
                r["lsb"][label] = int(lsb_diff(runtimes.run_tico(c.circle, r["inputs"])[0], r["ref"], r["unit"]).max())
            except Exception as e:
                r["lsb"][label] = e
        r["luci_circle"] = conv_luci.circle
        r["onert_circle"] = conv.circle
        r["onert_gap"] = onert_gap(conv)
        return key, r, ((conv.circle, r["inputs"]) if onert and r["onert_gap"] is None else None)

    def take_onert(r, out):
        try:
            if isinstance(out, Exception):
                raise out
            r["lsb"]["onert"] = int(lsb_diff(out[0], r["ref"], r["unit"]).max())
        except Exception as e:
            r["lsb"]["onert"] = e

    return run_rows(items, build, take_onert, timeout=1200)
