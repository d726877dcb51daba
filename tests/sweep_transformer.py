"""Issue 10's single-op rows for transformer-era ops PyTorch computes in float between its grids
(PT2E XNNPACK q>q, FX between dequantize and quantize_per_tensor; eager quantized gelu): silu,
gelu, softmax and log_softmax on every axis, tanh/sigmoid in a .pt2, layer_norm, matmul and
scaled_dot_product_attention. ``FAMILIES`` is registered by tests/sweep.py (the table) and run by
its harness like every other family."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from sweep_run import ALL_FRONTENDS, FX, PT2E, Case


def _f(fn):
    return fn


def _mods(**kw):
    return lambda: {k: v() for k, v in kw.items()}


# ---- issue 10: ops PyTorch computes in float between its grids (PT2E XNNPACK q>q, FX between
# dequantize and quantize_per_tensor; eager quantized gelu)
_GRIDS3 = {"unit": (1.0, 0.0), "wide": (4.0, 0.0), "shifted": (1.0, 2.0)}


def _pooled(fn, shape=(1, 4, 5, 6)):
    """fn(x) followed by an identity adaptive average pool (over a 4-D view of a 3-D result),
    which XNNPACK quantizes, so that PyTorch quantizes fn's output (a float op's output is
    quantized only for a quantized reader). ``shape``: the input's (static, so FX traces it)."""
    hw = tuple(shape[-2:])

    def run(s_, x):
        y = fn(x)
        if len(shape) != 4:
            y = y.reshape((1, -1) + hw)
        return F.adaptive_avg_pool2d(y, hw)
    return run


def _silu():
    out = []
    for g, calib in sorted(_GRIDS3.items()):
        for inplace in (False, True):
            out.append(Case("silu", dict(grid=g, inplace=int(inplace)), (1, 4, 5, 6),
                            _f(_pooled(lambda x, i=inplace: F.silu(x, inplace=i))), frontends=PT2E + FX, calib=calib))
    return out


def _gelu():
    """Eager quantized gelu (PyTorch dequantizes, computes and requantizes onto the input's grid)
    on every input code; PT2E's float gelu between XNNPACK's grids."""
    grids = {"unit": (1.0, 0.0), "wide": (4.0, 0.0), "narrow": (0.2, 0.0), "negative": (0.5, -1.5)}
    out = []
    for approx in ("none", "tanh"):
        for g, calib in sorted(grids.items()):
            out.append(Case("gelu", dict(approximate=approx, grid=g), (1, 1, 16, 16), _f(lambda s_, x: s_.act(x)),
                            _mods(act=lambda a=approx: nn.GELU(approximate=a)), calib=calib, all_codes=True))
        for g, calib in sorted(_GRIDS3.items()):
            out.append(Case("gelu", dict(approximate=approx, grid=g), (1, 4, 5, 6),
                            _f(_pooled(lambda x, a=approx: F.gelu(x, approximate=a))), frontends=PT2E + FX,
                            calib=calib))
    return out


def _softmax_cases(op, fn):
    out = []
    for shape in [(1, 4, 5, 6), (2, 3, 5, 4), (4, 5, 6)]:
        for dim in range(-len(shape), len(shape)):
            out.append(Case(op, dict(dim=dim), shape, _f(_pooled(lambda x, d=dim: fn(x, d), shape)),
                            frontends=PT2E + FX))
    return out


def _softmax():
    """Every axis (4-D tensors are NHWC in circle: dim 1 is last there, the others are moved
    last by a TRANSPOSE pair)."""
    return _softmax_cases("softmax", F.softmax)


def _log_softmax():
    return _softmax_cases("log_softmax", F.log_softmax)


def _tanh_sigmoid():
    """tanh and sigmoid in a .pt2: XNNPACK leaves them float between grids its observers chose
    (not circle's fixed ones); FX quantizes them onto the fixed grids."""
    out = []
    for name, fn in (("tanh", torch.tanh), ("sigmoid", torch.sigmoid)):
        for g, calib in sorted(_GRIDS3.items()):
            out.append(Case("tanh_sigmoid", dict(op=name, grid=g), (1, 4, 5, 6), _f(_pooled(fn)),
                            frontends=PT2E + FX, calib=calib))
    return out


# ---- layer_norm, matmul, scaled_dot_product_attention (float between DEQUANTIZE and QUANTIZE)
def _same(x):
    """The identity on a 4-D tensor (windows of 1): XNNPACK quantizes it, so the float op before it
    gets a quantized output (PT2E leaves these ops float), which the case compares."""
    return F.adaptive_avg_pool2d(x, list(x.shape[2:]))


def _layer_norm():
    out = []
    for dims in (1, 2, 3):
        shape = (1, 4, 5, 6)
        out.append(Case("layer_norm", dict(dims=dims), shape, _f(lambda s_, x: _same(s_.ln(x))),
                        _mods(ln=lambda d=dims, sh=shape: nn.LayerNorm(list(sh[-d:]))), frontends=ALL_FRONTENDS))
    out.append(Case("layer_norm", dict(dims=1, affine=0), (1, 4, 5, 6),
                    _f(lambda s_, x: _same(F.layer_norm(x, [6], eps=1e-6))), frontends=PT2E))
    # ConvNeXt's channels-last norm: permute, normalize C, permute back (the NHWC rule on both sides)
    out.append(Case("layer_norm", dict(dims=1, channels_last=1), (1, 8, 5, 6),
                    _f(lambda s_, x: _same(s_.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))),
                    _mods(ln=lambda: nn.LayerNorm(8, eps=1e-6)), frontends=ALL_FRONTENDS))
    return out


def _matmul():
    return [
        Case("matmul", dict(form="x@xT"), (1, 2, 6, 8), _f(lambda s_, x: _same(x @ x.transpose(-2, -1))), frontends=PT2E),
        Case("matmul", dict(form="xT@x"), (1, 2, 6, 8), _f(lambda s_, x: _same(torch.matmul(x.transpose(-2, -1), x))),
             frontends=PT2E),
        Case("matmul", dict(form="broadcast"), (2, 3, 4, 4),
             _f(lambda s_, x: _same(torch.matmul(x, x[:1, :, :, :].transpose(-2, -1)))), frontends=PT2E),
        Case("matmul", dict(form="bmm"), (1, 3, 4, 6),
             _f(lambda s_, x: _same(torch.bmm(x[0], x[0].transpose(1, 2)).unsqueeze(0))), frontends=PT2E),
    ]


def _sdpa():
    out = []
    for causal in (False, True):
        for scale in (None, 0.25):
            out.append(Case("scaled_dot_product_attention", dict(causal=int(causal), scale=scale or 0), (1, 2, 6, 8),
                            _f(lambda s_, x, c=causal, sc=scale: _same(F.scaled_dot_product_attention(
                                x, x, x, is_causal=c, scale=sc))), frontends=PT2E))
    return out


# (family, how many of its cases the default run checks, builder), in table order
FAMILIES = [("silu", 3, _silu), ("gelu", 4, _gelu), ("softmax", 6, _softmax), ("log_softmax", 5, _log_softmax),
            ("tanh_sigmoid", 4, _tanh_sigmoid), ("layer_norm", 6, _layer_norm), ("matmul", 4, _matmul),
            ("scaled_dot_product_attention", 4, _sdpa)]
