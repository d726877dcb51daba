"""Table-driven sweep over the parameter space PyTorch accepts for every converted op.

A case is one op with one set of parameters on one input shape: a tiny model built in code
around the op, quantized the way a user would (eager PTQ under the ``x86`` and ``qnnpack``
engines, traced and saved as TorchScript; and/or PT2E with torchao's XNNPACK quantizer, saved
as ``.pt2``), converted, run on TICO's reference runtime and on onert, and compared with
PyTorch's own quantized output element by element in integer LSB of the output scale.

``GRID`` holds every case (the whole parameter grid); ``default_sample()`` is the fixed-seed
sample the default test run checks, the rest runs with ``-m slow`` (tests/test_sweep_ops.py)
or ``scripts/sweep_ops.py``. A case is only built when it runs (``build``), so ``-k`` selects
cheaply; ``run_cases`` batches all onert runs of a selection into one child process.

A case with ``refuse`` must be refused with a ConversionError holding that text (a combination
circle cannot express exactly); anything else must convert and agree within ``LIMIT``.
Where PyTorch's own kernel is wrong for an engine the reference comes from the engine that is
right (``ref_engine``, the reason beside each use).
"""
import collections
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional

import sweep_shapes
import sweep_transformer
from sweep_run import (  # noqa: F401  (LIMIT, run_cases, lsb_diff, _safe: the sweep's API)
    ALL_FRONTENDS, EAGER, LIMIT, PT2E, SEED, Case, QNNPACK_AVG_DIVISOR, QNNPACK_AVG_EXCLUDE_PAD,
    QNNPACK_DILATED_MAX_PAD, X86_CONV_PAD_GE_KERNEL, X86_CONV_TRANSPOSE, _safe, lsb_diff, run_cases)


# ------------------------------------------------------------------------------ the grid
GRID = []          # every case
_BUILDERS = []     # (op, fn() -> [Case]) in table order
SAMPLE = {}        # op -> how many of its cases the default run checks


def family(op, sample):
    def deco(fn):
        _BUILDERS.append((op, fn))
        SAMPLE[op] = sample
        return fn
    return deco


def _ff():
    return FloatFunctional()


def _mods(**kw):
    return lambda: {k: v() for k, v in kw.items()}


def _hw(seed, lo, hi):
    """A deterministic input size in [lo, hi] (odd and even sizes both appear)."""
    return lo + (seed * 7919) % (hi - lo + 1)


# ---- pooling
def _pool_out(n, k, s, p, d, ceil_mode):
    eff = d * (k - 1) + 1
    if n + 2 * p < eff:
        return 0
    if not ceil_mode:
        return (n + 2 * p - eff) // s + 1
    out = -(-(n + 2 * p - eff) // s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    return out


@family("max_pool2d", 30)
def _max_pool():
    out = []
    i = 0
    for k in range(1, 6):
        for s in range(1, 4):
            for p in range(0, k // 2 + 1):
                for d in (1, 2):
                    for ceil in (False, True):
                        i += 1
                        h, w = _hw(i, 5, 12), _hw(i + 3, 5, 12)
                        if _pool_out(h, k, s, p, d, ceil) < 1 or _pool_out(w, k, s, p, d, ceil) < 1:
                            continue
                        params = dict(k=k, s=s, p=p, d=d, ceil=int(ceil))
                        out.append(Case("max_pool2d", params, (1, 3, h, w),
                                        _f(lambda s_, x, k=k, s=s, p=p, d=d, c=ceil: F.max_pool2d(x, k, s, p, d, ceil_mode=c)),
                                        frontends=_max_frontends(k),
                                        ref_engine=QNNPACK_DILATED_MAX_PAD if d > 1 and p else None))
    # non-square windows
    for j, (k, s, p) in enumerate([((1, 3), (1, 2), (0, 1)), ((3, 2), (2, 1), (1, 1)), ((5, 2), (3, 2), (2, 0)),
                                   ((2, 4), (2, 3), (1, 2))]):
        out.append(Case("max_pool2d", dict(k="%dx%d" % k, s="%dx%d" % s, p="%dx%d" % p), (1, 3, 9, 10),
                        _f(lambda s_, x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p)), frontends=ALL_FRONTENDS))
    return out


def _k1_not_qnnpack(k, frontends):
    # PyTorch's qnnpack refuses a 1x1 pooling window ("1x1 pooling is meaningless"): no reference
    return tuple(f for f in frontends if f != "qnnpack") if k in (1, (1, 1)) else frontends


def _max_frontends(k):
    return _k1_not_qnnpack(k, ALL_FRONTENDS)


def _f(fn):
    return fn


@family("avg_pool2d", 30)
def _avg_pool():
    out = []
    i = 0
    for k in range(1, 6):
        for s in range(1, 4):
            for p in range(0, k // 2 + 1):
                for ceil in (False, True):
                    for cip in (True, False):
                        for div in (None, 3):
                            i += 1
                            h, w = _hw(i, 5, 12), _hw(i + 5, 5, 12)
                            if _pool_out(h, k, s, p, 1, ceil) < 1 or _pool_out(w, k, s, p, 1, ceil) < 1:
                                continue
                            params = dict(k=k, s=s, p=p, ceil=int(ceil), cip=int(cip), div=div or 0)
                            ref = QNNPACK_AVG_DIVISOR if div else (QNNPACK_AVG_EXCLUDE_PAD if not cip and p else None)
                            out.append(Case("avg_pool2d", params, (1, 3, h, w),
                                            _f(lambda s_, x, k=k, s=s, p=p, c=ceil, i_=cip, d=div:
                                               F.avg_pool2d(x, k, s, p, c, i_, d)),
                                            ref_engine=ref, frontends=_k1_not_qnnpack(k, EAGER)))
    for k, s, p in [((1, 3), (1, 2), (0, 1)), ((3, 2), (2, 1), (1, 1)), ((5, 2), (3, 2), (2, 0))]:
        out.append(Case("avg_pool2d", dict(k="%dx%d" % k, s="%dx%d" % s, p="%dx%d" % p), (1, 3, 9, 10),
                        _f(lambda s_, x, k=k, s=s, p=p: F.avg_pool2d(x, k, s, p))))
    return out


@family("adaptive_avg_pool2d", 30)
def _adaptive_avg():
    """Every input size 1..16 with every output size 1..input, on H; W takes the pairs in
    another order so every pair also appears on W."""
    pairs = [(n, o) for n in range(1, 17) for o in range(1, n + 1)]
    rot = pairs[len(pairs) // 3:] + pairs[:len(pairs) // 3]
    out = []
    for (h, oh), (w, ow) in zip(pairs, rot):
        out.append(Case("adaptive_avg_pool2d", dict(out="%dx%d" % (oh, ow)), (1, 3, h, w),
                        _f(lambda s_, x, o=(oh, ow): F.adaptive_avg_pool2d(x, o)), frontends=ALL_FRONTENDS,
                        pt2_pre=False))
    # the reported case, and None entries (keep that size)
    out.append(Case("adaptive_avg_pool2d", dict(out="3x3"), (1, 3, 10, 10),
                    _f(lambda s_, x: F.adaptive_avg_pool2d(x, 3)), frontends=ALL_FRONTENDS, pt2_pre=False))
    out.append(Case("adaptive_avg_pool2d", dict(out="Nonex3"), (1, 3, 7, 10),
                    _f(lambda s_, x: F.adaptive_avg_pool2d(x, (None, 3))), frontends=EAGER))
    return out


@family("adaptive_max_pool2d", 10)
def _adaptive_max():
    """PyTorch has no quantized adaptive max pooling (eager x86/qnnpack refuse it on a quantized
    tensor), so it exists only in PT2E programs, computed on dequantized values between the
    quantized ops around it (here identity adaptive average pools, which XNNPACK quantizes)."""
    pairs = [(n, o) for n in range(1, 17) for o in range(1, n + 1)]
    rot = pairs[len(pairs) // 2:] + pairs[:len(pairs) // 2]
    out = []
    for (h, oh), (w, ow) in zip(pairs, rot):
        out.append(Case("adaptive_max_pool2d", dict(out="%dx%d" % (oh, ow)), (1, 3, h, w),
                        _f(lambda s_, x, o=(oh, ow): F.adaptive_avg_pool2d(F.adaptive_max_pool2d(x, o), o)),
                        frontends=PT2E))
    return out


@family("global_pool", 10)
def _global():
    out = []
    for h, w in [(1, 1), (3, 3), (5, 5), (7, 7), (9, 9), (13, 13), (15, 15), (3, 7), (7, 5), (11, 1)]:
        out.append(Case("global_pool", dict(kind="adaptive1"), (1, 4, h, w),
                        _f(lambda s_, x: F.adaptive_avg_pool2d(x, 1)), frontends=ALL_FRONTENDS, pt2_pre=False))
        out.append(Case("global_pool", dict(kind="mean_keepdim"), (1, 4, h, w),
                        _f(lambda s_, x: x.mean((2, 3), keepdim=True)), frontends=ALL_FRONTENDS))
        out.append(Case("global_pool", dict(kind="max"), (1, 4, h, w),
                        _f(lambda s_, x, k=(h, w): F.max_pool2d(x, k)), frontends=_max_frontends((h, w))))
    return out


# ---- convolutions
def _conv_out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _conv_groups(i, cin=4):
    """(groups, out channels): 1, 2, depthwise, depthwise with multiplier 2, in turn."""
    return [(1, 6), (2, 6), (cin, cin), (cin, 2 * cin)][i % 4]


@family("conv2d", 30)
def _conv2d():
    out = []
    i = 0
    for kh in range(1, 8):
        for s in range(1, 4):
            for d in range(1, 4):
                for p in (0, 1, 2, 3):
                    # padding='same' has no quantized form: eager quantized conv refuses it and
                    # XNNPACK leaves such a conv in float
                    i += 1
                    kw = [kh, 1 + (kh + i) % 7][i % 2]          # square and non-square kernels
                    g, cout = _conv_groups(i)
                    bias = i % 3 != 0
                    pad = (p, (p + i) % 4)
                    need = [d * (kh - 1) + 1, d * (kw - 1) + 1]
                    hw = []
                    for j in range(2):
                        # at least the dilated kernel (PyTorch x86 segfaults on some depthwise convs
                        # whose window only fits thanks to the padding), odd sizes mostly
                        n = max(need[j], 3) + 2 * ((i + j) % 3)
                        hw.append(n | 1 if n < 13 else n)
                    params = dict(k="%dx%d" % (kh, kw), s=s, d=d, p="%dx%d" % pad,
                                  g=g, cout=cout, bias=int(bias))
                    wide_pad = pad[0] >= kh or pad[1] >= kw
                    out.append(Case("conv2d", params, (1, 4) + tuple(hw),
                                    _f(lambda s_, x: s_.conv(x)),
                                    _mods(conv=lambda kh=kh, kw=kw, s=s, pad=pad, d=d, g=g, cout=cout, bias=bias:
                                          nn.Conv2d(4, cout, (kh, kw), s, pad, d, g, bias)),
                                    frontends=ALL_FRONTENDS,
                                    ref_engine=X86_CONV_PAD_GE_KERNEL if wide_pad else None))
    return out


@family("conv1d", 20)
def _conv1d():
    out = []
    i = 0
    for k in range(1, 8):
        for s in range(1, 4):
            for d in range(1, 4):
                for p in (0, 1, 2, 3):     # padding='same': no quantized form (see conv2d)
                    i += 1
                    if i % 2:
                        continue      # every other combination: the grid stays a few hundred cases
                    g, cout = _conv_groups(i)
                    bias = i % 3 != 0
                    n = max(d * (k - 1) + 1, 3) + 2 * (i % 4)
                    params = dict(k=k, s=s, d=d, p=p, g=g, cout=cout, bias=int(bias))
                    out.append(Case("conv1d", params, (1, 4, n | 1),
                                    _f(lambda s_, x: s_.conv(x)),
                                    _mods(conv=lambda k=k, s=s, p=p, d=d, g=g, cout=cout, bias=bias:
                                          nn.Conv1d(4, cout, k, s, p, d, g, bias)),
                                    frontends=ALL_FRONTENDS, pt2_pre=False,
                                    ref_engine=X86_CONV_PAD_GE_KERNEL if p >= k else None))
    return out


@family("conv_transpose2d", 20)
def _conv_transpose2d():
    """Eager only: the XNNPACK quantizer's conv_transpose annotation needs a conv-bn pattern
    (a lone ConvTranspose2d stays float in PT2E). Eager ConvTranspose2d takes per-tensor weights."""
    out = []
    i = 0
    for k in range(1, 6):
        for s in range(1, 4):
            for d in (1, 2):
                for p in range(0, k):
                    for op_ in range(0, max(s, d)):
                        i += 1
                        if d * (k - 1) < p:
                            continue
                        g = 2 if i % 3 == 0 else 1
                        bias = i % 4 != 0
                        hw = (3 + i % 4) | 1, 4 + i % 3
                        if min((n - 1) * s - 2 * p + d * (k - 1) + op_ + 1 for n in hw) < 1:
                            continue      # PyTorch: output dimension is zero
                        params = dict(k=k, s=s, d=d, p=p, op=op_, g=g, bias=int(bias))
                        out.append(Case("conv_transpose2d", params, (1, 4) + tuple(hw),
                                        _f(lambda s_, x: s_.conv(x)),
                                        _mods(conv=lambda k=k, s=s, p=p, op_=op_, d=d, g=g, bias=bias:
                                              nn.ConvTranspose2d(4, 6, k, s, p, op_, g, bias, d)),
                                        recipe="eager_per_tensor_weights", ref_engine=X86_CONV_TRANSPOSE))
    return out


@family("linear", 16)
def _linear():
    out = []
    for shape in [(3, 16), (1, 16), (2, 5, 16), (1, 7, 16), (2, 3, 4, 16), (1, 2, 3, 16)]:
        for fout in (1, 5, 12):
            for bias in (True, False):
                out.append(Case("linear", dict(out=fout, bias=int(bias)), shape, _f(lambda s_, x: s_.fc(x)),
                                _mods(fc=lambda fout=fout, bias=bias: nn.Linear(16, fout, bias)),
                                frontends=ALL_FRONTENDS, pt2_pre=False))
    return out


# ---- interpolate
@family("interpolate", 20)
def _interpolate():
    out = []
    sizes = [("size", (11, 13)), ("size", (5, 7)), ("size", (8, 8)), ("size", (3, 16)),
             ("scale", 2), ("scale", 3), ("scale", (2, 3)), ("scale", 1.5), ("scale", 1.7), ("scale", 0.5),
             ("scale", 0.6), ("scale", 2.5)]
    modes = [("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True)]
    for mode, align in modes:
        for how, v in sizes:
            kw = {"size": v} if how == "size" else {"scale_factor": v}
            params = dict(mode=mode, align=align if align is not None else "-", **{how: v if not isinstance(v, tuple)
                                                                                    else "%sx%s" % v})
            fn = _f(lambda s_, x, kw=kw, mode=mode, align=align: F.interpolate(x, mode=mode, align_corners=align, **kw))
            refuse = None
            if mode == "bilinear" and not align and how == "scale" and not _bilinear_scale_ok(v, (8, 8)):
                refuse = "cannot express"
            out.append(Case("interpolate", params, (1, 3, 8, 8), fn, refuse=refuse))
    return out


def _bilinear_scale_ok(v, hw):
    """Whether PyTorch's 1/scale_factor equals in/out in float32 (what RESIZE_BILINEAR uses)."""
    vs = v if isinstance(v, tuple) else (v, v)
    for f, n in zip(vs, hw):
        n_out = int(np.floor(n * float(f)))
        if np.float32(1.0 / float(f)) != np.float32(n) / np.float32(n_out):
            return False
    return True


# ---- cat / stack
def _grids(s_, x):
    """x and two copies of it on other grids (mul_scalar by 2 and by 0.5 rescale only)."""
    return [x, s_.m2.mul_scalar(x, 2.0), s_.m3.mul_scalar(x, 0.5)]


@family("cat", 12)
def _cat():
    out = []
    for shape in [(2, 6), (2, 3, 5), (1, 3, 4, 5), (2, 2, 3, 4, 3)]:
        for dim in range(-len(shape), len(shape)):
            out.append(Case("cat", dict(dim=dim), shape, _f(lambda s_, x, d=dim: s_.ff.cat(_grids(s_, x), d)),
                            _mods(ff=_ff, m2=_ff, m3=_ff)))
    return out


@family("stack", 8)
def _stack():
    out = []
    for shape in [(2, 6), (1, 3, 4, 5)]:
        for dim in range(-len(shape) - 1, len(shape) + 1):
            out.append(Case("stack", dict(dim=dim), shape, _f(lambda s_, x, d=dim: torch.stack([x, x], d))))
    return out


# ---- reductions
@family("mean", 16)
def _mean():
    import itertools
    out = []
    for shape in [(2, 3, 5), (1, 3, 4, 5), (2, 3, 4, 5)]:
        r = len(shape)
        for n in range(1, r + 1):
            for dims in itertools.combinations(range(r), n):
                for keep in (True, False):
                    out.append(Case("mean", dict(dims="".join(map(str, dims)), keep=int(keep)), shape,
                                    _f(lambda s_, x, d=dims, k=keep: x.mean(d, keepdim=k)),
                                    frontends=ALL_FRONTENDS if r == 4 else EAGER))
    return out


# ---- data movement
_MOVES = [
    ("flatten", lambda x: x.flatten(1)),
    ("flatten_mid", lambda x: x.flatten(1, -2) if x.dim() > 2 else x.flatten()),
    ("reshape_rev", lambda x: x.reshape(tuple(reversed(x.shape)))),
    ("view_-1", lambda x: x.view(x.shape[0], -1)),
    ("permute_rev", lambda x: x.permute(*reversed(range(x.dim())))),
    ("permute_roll", lambda x: x.permute(*([x.dim() - 1] + list(range(x.dim() - 1))))),
    ("transpose_01", lambda x: x.transpose(0, 1)),
    ("transpose_last", lambda x: x.transpose(-1, -2)),
    ("unsqueeze_0", lambda x: x.unsqueeze(0)),
    ("unsqueeze_-1", lambda x: x.unsqueeze(-1)),
    ("squeeze_1", lambda x: x[:, :1].squeeze(1)),
    ("select_1", lambda x: x.select(1, 1)),
    ("select_-1", lambda x: x[..., -1]),
    ("slice_1", lambda x: x[:, 1:3]),
    ("slice_-1", lambda x: x[..., 1:]),
    ("slice_step2", lambda x: x[:, ::2]),
    ("slice_step3_last", lambda x: x[..., 1::3]),
]


@family("data_movement", 30)
def _data_movement():
    out = []
    for shape in [(3, 6), (2, 3, 7), (1, 4, 5, 6), (2, 3, 4, 5), (1, 2, 3, 4, 5)]:
        for name, fn in _MOVES:
            out.append(Case("data_movement", dict(op=name), shape, _f(lambda s_, x, fn=fn: fn(x))))
        for dim in range(len(shape)):
            out.append(Case("data_movement", dict(op="chunk3", dim=dim), shape,
                            _f(lambda s_, x, d=dim: s_.ff.cat(list(x.chunk(3, d))[::-1], d)), _mods(ff=_ff)))
            out.append(Case("data_movement", dict(op="split2", dim=dim), shape,
                            _f(lambda s_, x, d=dim: s_.ff.cat(list(torch.split(x, 2, d))[::-1], d)), _mods(ff=_ff)))
    return out


# ---- elementwise
def _bcast_shapes():
    """(a, b) pairs broadcasting in every direction, on 2-D to 4-D."""
    return [((2, 6), (1, 6)), ((2, 6), (2, 1)), ((2, 6), (1, 1)), ((3, 4, 5), (1, 4, 5)), ((3, 4, 5), (3, 1, 5)),
            ((3, 4, 5), (4, 1)), ((3, 4, 5), (5,)), ((1, 3, 4, 5), (1, 3, 1, 1)), ((1, 3, 4, 5), (1, 1, 4, 5)),
            ((2, 3, 4, 5), (2, 3, 4, 1)), ((1, 3, 4, 5), (3, 1, 1)), ((1, 3, 4, 5), (1, 1, 1, 1)),
            ((2, 1, 4, 1), (1, 3, 1, 5))]


def _narrow(x, shape):
    """x cut to ``shape`` (broadcastable to it) by taking element 0 of the dims it lacks: exact
    copies of PyTorch's codes, so each op of the case is fed PyTorch's own integers."""
    lead = x.dim() - len(shape)
    for i in range(x.dim()):
        if (i < lead or shape[i - lead] == 1) and x.shape[i] != 1:
            x = x[(slice(None),) * i + (slice(0, 1),)]
    return x.reshape(shape)


def _bshape(a, b):
    r = max(len(a), len(b))
    a, b = (1,) * (r - len(a)) + tuple(a), (1,) * (r - len(b)) + tuple(b)
    return tuple(max(u, v) for u, v in zip(a, b))


@family("elementwise", 30)
def _elementwise():
    """The second operand is on another grid (mul_scalar by 0.5 only rescales: exact)."""
    out = []
    for a, b in _bcast_shapes():
        for op in ("add", "mul", "add_relu"):
            for order in ("ab", "ba"):
                def fn(s_, x, op=op, order=order, a=a, b=b):
                    u, v = _narrow(x, a), s_.hf.mul_scalar(_narrow(x, b), 0.5)
                    if order == "ba":
                        u, v = v, u
                    return getattr(s_.ff, op)(u, v)
                out.append(Case("elementwise", dict(op=op, a="x".join(map(str, a)), b="x".join(map(str, b)),
                                                    order=order), _bshape(a, b), _f(fn), _mods(ff=_ff, hf=_ff)))
    for scalar in (-2.0, -0.3, 0.0, 0.25, 1.0, 3.5):
        for op in ("add_scalar", "mul_scalar"):
            refuse = None
            if op == "mul_scalar" and scalar == 0.0:
                refuse = "mul_scalar by 0"
            if op == "add_scalar" and scalar == 3.5:
                refuse = "add_scalar moves the zero point out of range"
            out.append(Case("elementwise", dict(op=op, c=scalar), (1, 3, 4, 5),
                            _f(lambda s_, x, op=op, c=scalar: getattr(s_.ff, op)(x, c)), _mods(ff=_ff), refuse=refuse))
    return out


# ---- activations: every input code, several input grids
_ACTS = [
    ("relu", lambda: nn.ReLU()), ("relu6", lambda: nn.ReLU6()), ("hardtanh", lambda: nn.Hardtanh(-1.0, 1.0)),
    ("hardtanh_0.2_2.5", lambda: nn.Hardtanh(0.2, 2.5)), ("sigmoid", lambda: nn.Sigmoid()), ("tanh", lambda: nn.Tanh()),
    ("hardswish", lambda: nn.Hardswish()), ("hardsigmoid", lambda: nn.Hardsigmoid()), ("elu", lambda: nn.ELU()),
    ("elu_0.5", lambda: nn.ELU(0.5)), ("leaky_relu", lambda: nn.LeakyReLU(0.1)), ("leaky_relu_0.01", lambda: nn.LeakyReLU()),
]


@family("activation", 20)
def _activation():
    out = []
    grids = {"unit": (1.0, 0.0), "wide": (4.0, 0.0), "narrow": (0.2, 0.0), "shifted": (1.0, 2.0), "negative": (0.5, -1.5)}
    for name, mk in _ACTS:
        for g, calib in sorted(grids.items()):
            out.append(Case("activation", dict(op=name, grid=g), (1, 1, 16, 16), _f(lambda s_, x: s_.act(x)),
                            _mods(act=mk), calib=calib, all_codes=True))
    for g, calib in sorted(grids.items()):
        out.append(Case("activation", dict(op="clamp", grid=g), (1, 1, 16, 16),
                        _f(lambda s_, x: torch.clamp(x, -0.5, 0.7)), calib=calib, all_codes=True))
    return out


# ---- issue 10: data movement PyTorch leaves float in PT2E, constant inputs and constants built
# in forward (folded): the rows are in sweep_shapes.py
for _op, _sample, _fn in sweep_shapes.FAMILIES:
    family(_op, _sample)(_fn)


# ---- ops PyTorch computes on dequantized values (no quantized kernel): one row per op
_FLOAT_UNARY = [("abs", torch.abs), ("neg", torch.neg)]


def _between_quantized(op):
    """Eager: the user dequantizes, applies ``op`` and quantizes again (a QuantStub of its own).
    PT2E: ``op`` reads a quantized tensor and feeds a quantized consumer (an identity pool)."""
    def fn(s_, x):
        if x.is_quantized:
            return s_.q(op(s_.dq(x)))
        return F.adaptive_avg_pool2d(op(x), list(x.shape[2:]))
    return fn


@family("float_unary", 8)
def _float_unary():
    import torch.ao.quantization as tq
    out = []
    for name, op in _FLOAT_UNARY:
        for g, calib in (("shifted", (1.0, 0.5)), ("negative", (0.5, -1.5))):
            out.append(Case("float_unary", dict(op=name, grid=g), (1, 1, 16, 16), _f(_between_quantized(op)),
                            _mods(q=tq.QuantStub, dq=tq.DeQuantStub), frontends=ALL_FRONTENDS, calib=calib,
                            all_codes=True))
    return out


# ---- issue 10: transformer-era ops PyTorch computes in float between its grids (silu, gelu,
# softmax, log_softmax, tanh/sigmoid in a .pt2, layer_norm, matmul, sdpa): sweep_transformer.py
for _op, _sample, _fn in sweep_transformer.FAMILIES:
    family(_op, _sample)(_fn)


def _build_grid():
    for op, fn in _BUILDERS:
        GRID.extend(fn())
    ids = [c.id for c in GRID]
    dup = [i for i, n in collections.Counter(ids).items() if n > 1]
    assert not dup, "duplicate case ids: %s" % dup[:5]


def items(cases=None):
    """[(case, frontend)] of ``cases`` (default: the whole grid)."""
    return [(c, fe) for c in (GRID if cases is None else cases) for fe in c.frontends]


def default_sample():
    """The fixed-seed sample of (case, frontend) the default run checks: SAMPLE[op] per op."""
    rng = random.Random(SEED)
    chosen = []
    by_op = collections.OrderedDict()
    for it in items():
        by_op.setdefault(it[0].op, []).append(it)
    for op, its in by_op.items():
        n = min(SAMPLE[op], len(its))
        picked = set(rng.sample(range(len(its)), n))
        chosen.extend(it for i, it in enumerate(its) if i in picked)
    return chosen


def counts(selection):
    """op -> number of (case, frontend) in ``selection``."""
    c = collections.OrderedDict((op, 0) for op, _ in _BUILDERS)
    for case, _ in selection:
        c[case.op] += 1
    return c


_build_grid()
