"""layer_norm, matmul/bmm and scaled_dot_product_attention (ops/norm.py, ops/attention.py): each
op alone, quantized with PT2E XNNPACK, converted and run on onert and TICO, compared with
PyTorch's own output codes: within 1 LSB of the output grid, fed PyTorch's own inputs.

XNNPACK leaves these ops float between a dequantize and a quantize. Every input goes through an
identity adaptive_avg_pool2d (XNNPACK quantizes it, so the op reads quantized values, as in a
real model) and the op's output through another (so PyTorch quantizes the op's output: the model
output is exactly the op's quantized output).
"""
import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import pt2models as M
from onelib.pytorch_quant import api, runtimes

LIMIT = 1
ONE_BIN = os.environ.get("ONE_BIN_DIR", "")


def _pool(x):
    """The identity on a 4-D tensor (windows of 1), quantized by XNNPACK on one shared grid."""
    return F.adaptive_avg_pool2d(x, list(x.shape[2:]))


def _as4(x):
    return x.reshape((1,) * (4 - x.dim()) + tuple(x.shape)) if x.dim() < 4 else x


class OpNet(nn.Module):
    """inputs (4-D, through _pool) -> reshaped to ``shapes`` -> fn -> 4-D -> _pool."""

    def __init__(self, fn, shapes, mods=None, buffers=None):
        super().__init__()
        self.fn, self.shapes = fn, shapes
        for k, v in (mods or {}).items():
            setattr(self, k, v)
        for k, v in (buffers or {}).items():
            self.register_buffer(k, v)

    def forward(self, *xs):
        xs = [_pool(x).reshape(s) for x, s in zip(xs, self.shapes)]
        return _pool(_as4(self.fn(self, *xs)))


def _quantize(model, shapes):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    ins = [tuple(_as4(torch.zeros(s)).shape) for s in shapes]
    g = torch.Generator().manual_seed(3)
    example = tuple(torch.randn(s, generator=g) for s in ins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = torch.export.export(model.eval(), example, strict=True).module()
        prepared = prepare_pt2e(gm, XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True)))
        with torch.no_grad():
            for _ in range(6):
                prepared(*[torch.randn(s, generator=g) for s in ins])
        ep = torch.export.export(convert_pt2e(prepared), example)
    return M.Quantized("op", "xnnpack", ep, ins)


def check(tmp_path, fn, shapes, mods=None, buffers=None, kinds=()):
    """Convert the one-op model; max LSB on TICO (both profiles) and onert must be <= LIMIT."""
    torch.manual_seed(0)
    model = OpNet(fn, shapes, mods, buffers)
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    q = _quantize(model, shapes)
    scale = q.output_scale()[0]
    assert scale is not None, "the op's output is not quantized"
    path = q.save(os.path.join(str(tmp_path), "op.pt2"))
    x = M.grid_inputs(q)
    ref = q.reference(x)[0]
    res = {}
    conv = api.convert(path, api.ConvertOptions(profile="onert"))
    luci = api.convert(path, api.ConvertOptions(profile="luci"))
    got = [op.kind for op in conv.graph.ops]
    for k in kinds:
        assert k in got, (k, got)
    for label, c, run in (("onert", conv, runtimes.run_onert), ("tico", conv, runtimes.run_tico),
                          ("tico_luci", luci, runtimes.run_tico)):
        y = run(c.circle, x)[0]
        assert y.shape == ref.shape, (label, y.shape, ref.shape)
        res[label] = int(np.rint(np.abs(y.astype(np.float64) - ref.astype(np.float64)) / scale).max())
    if ONE_BIN:
        res.update(_one_tools(tmp_path, conv, luci, x, ref, scale))
    print("max LSB", res)
    assert all(v <= LIMIT for v in res.values()), res
    return res


def _one_tools(tmp_path, conv, luci, x, ref, scale):
    """ONE's own tools (when ONE_BIN_DIR is set): fake quantization, the O1 passes and luci's
    verifier take both circles (tests/test_one_tools.py judge), and luci-interpreter runs the
    onert profile's circle within LIMIT of PyTorch."""
    import test_one_tools as T
    for label, c in (("onert", conv), ("luci", luci)):
        path = os.path.join(str(tmp_path), "%s.circle" % label)
        c.save(path)
        bad = T.judge(path, c.circle)
        if label == "onert":
            bad.pop("luci_verifier", None)
            bad.pop("verifier_agreement", None)
        assert bad == {}, (label, bad)
    y = runtimes.run_luci_interpreter(conv.circle, x, ONE_BIN)[0]
    return {"luci_interpreter": int(np.rint(np.abs(y.astype(np.float64) - ref.astype(np.float64)) / scale).max())}


# ------------------------------------------------------------------------------ layer_norm
@pytest.mark.parametrize("shape,dims", [((2, 8, 16), 1), ((1, 6, 4, 8), 2), ((3, 24), 1)])
def test_layer_norm_tokens(tmp_path, shape, dims):
    check(tmp_path, lambda s, x: s.ln(x), [shape], mods={"ln": nn.LayerNorm(list(shape[-dims:]))},
          kinds=("MEAN", "RSQRT", "QUANTIZE"))


def test_layer_norm_without_affine(tmp_path):
    check(tmp_path, lambda s, x: F.layer_norm(x, [16], eps=1e-6), [(2, 5, 16)])


def test_native_layer_norm(tmp_path):
    """aten.native_layer_norm (what run_decompositions makes of layer_norm): its first output."""
    check(tmp_path, lambda s, x: torch.native_layer_norm(x, [16], s.ln.weight, s.ln.bias, 1e-5)[0], [(2, 5, 16)],
          mods={"ln": nn.LayerNorm(16)}, kinds=("RSQRT",))


def test_layer_norm_convnext_channels_last(tmp_path):
    """ConvNeXt's LayerNorm2d: permute to channels last, normalize C, permute back (4-D NHWC rule)."""
    def fn(s, x):
        return s.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    check(tmp_path, fn, [(1, 8, 5, 6)], mods={"ln": nn.LayerNorm(8, eps=1e-6)})


# ------------------------------------------------------------------------------ matmul
@pytest.mark.parametrize("a,b", [
    ((2, 6, 8), (2, 8, 5)),            # bmm-like 3-D
    ((1, 2, 6, 8), (1, 2, 8, 5)),      # attention 4-D
    ((2, 3, 4, 8), (3, 8, 5)),         # rank broadcast
    ((2, 1, 4, 8), (1, 3, 8, 5)),      # batch broadcast both ways
    ((6, 8), (8, 5)),                  # mm
])
def test_matmul(tmp_path, a, b):
    check(tmp_path, lambda s, x, y: torch.matmul(x, y), [a, b], kinds=("BATCH_MATMUL",))


def test_bmm(tmp_path):
    check(tmp_path, lambda s, x, y: torch.bmm(x, y), [(3, 4, 8), (3, 8, 6)], kinds=("BATCH_MATMUL",))


def test_matmul_transposed_operand(tmp_path):
    """q @ k.transpose(-2, -1), as ViT writes attention."""
    check(tmp_path, lambda s, x, y: x @ y.transpose(-2, -1), [(1, 2, 6, 8), (1, 2, 7, 8)])


# ------------------------------------------------------------------------------ sdpa
QKV = [(1, 2, 6, 8), (1, 2, 6, 8), (1, 2, 6, 8)]


@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"scale": 0.3}, {"is_causal": True, "scale": 0.5}])
def test_sdpa(tmp_path, kw):
    check(tmp_path, lambda s, q, k, v: F.scaled_dot_product_attention(q, k, v, **kw), QKV,
          kinds=("BATCH_MATMUL", "SOFTMAX"))


def test_sdpa_cross_lengths(tmp_path):
    check(tmp_path, lambda s, q, k, v: F.scaled_dot_product_attention(q, k, v), [(1, 2, 5, 8), (1, 2, 7, 8), (1, 2, 7, 4)])


def test_sdpa_bool_mask(tmp_path):
    m = torch.rand(6, 6, generator=torch.Generator().manual_seed(5)) > 0.4
    m[:, 0] = True   # no row wholly masked (PyTorch's fused kernels give NaN or 0 there)
    check(tmp_path, lambda s, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=s.mask), QKV,
          buffers={"mask": m})


@pytest.mark.parametrize("dtype", ["bool", "float"])
def test_sdpa_mask_with_a_row_wholly_masked(tmp_path, dtype):
    """PyTorch returns 0 for a query row whose every key is masked (False, or -inf everywhere)."""
    m = torch.rand(1, 2, 6, 6, generator=torch.Generator().manual_seed(5)) > 0.4
    m[..., 0] = True
    m[0, 1, 2] = False
    if dtype == "float":
        m = torch.where(m, torch.zeros(()), torch.full((), float("-inf")))
    check(tmp_path, lambda s, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=s.mask), QKV,
          buffers={"mask": m}, kinds=("MUL",))


def test_sdpa_float_mask(tmp_path):
    m = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(6))
    check(tmp_path, lambda s, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=s.mask), QKV,
          buffers={"mask": m})


def test_sdpa_mask_input(tmp_path):
    """BERT's form: the additive mask is a model input, read through a dequantize."""
    check(tmp_path, lambda s, q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
          QKV + [(1, 1, 6, 6)])



@pytest.mark.parametrize("kw,text", [({"dropout_p": 0.1}, "dropout_p=0.1"), ({"enable_gqa": True}, "enable_gqa=True")])
def test_sdpa_refusals(tmp_path, kw, text):
    """What inference does not compute the same way: refused, naming the argument."""
    from onelib.pytorch_quant.errors import ConversionError
    shapes = [(1, 4, 6, 8), (1, 2, 6, 8), (1, 2, 6, 8)] if kw.get("enable_gqa") else QKV
    q = _quantize(OpNet(lambda s, q, k, v: F.scaled_dot_product_attention(q, k, v, **kw), shapes), shapes)
    path = q.save(os.path.join(str(tmp_path), "op.pt2"))
    with pytest.raises(ConversionError, match=text):
        api.convert(path)

# ------------------------------------------------------------------------------ FX (TorchScript)
import qmodels as Q  # noqa: E402


class FxNet(nn.Module):
    def __init__(self, fn, mods=None):
        super().__init__()
        self.fn = fn
        for k, v in (mods or {}).items():
            setattr(self, k, v)

    def forward(self, x):
        return self.fn(self, x)


def check_fx(tmp_path, fn, shape, mods=None, kinds=(), float_ops=()):
    """FX x86 (quantized::layer_norm, quantized::matmul; sdpa stays float and a one-tensor cat
    quantizes its output), traced; the circle's output codes against PyTorch's. ``float_ops``:
    module types / functions the qconfig leaves float (aten::layer_norm, aten::matmul)."""
    torch.manual_seed(0)
    qm = _quantize_fx(FxNet(fn, mods).eval(), shape, float_ops)
    path = os.path.join(str(tmp_path), "op.pt")
    traced = Q.trace_and_save(qm, shape, path, engine="x86")
    found = set(n.kind() for n in traced.inlined_graph.nodes())
    for k in kinds:
        assert k in found, (k, sorted(found))
    _check_torchscript(path, qm, shape, "x86")


def _quantize_fx(model, shape, float_ops):
    import torch.ao.quantization as tq
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    mapping = tq.get_default_qconfig_mapping("x86")
    for f in float_ops:
        mapping = mapping.set_object_type(f, None)
    g = torch.Generator().manual_seed(1)
    with Q.engine_ctx("x86"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = prepare_fx(model, mapping, (torch.randn(shape, generator=g),))
        with torch.no_grad():
            for _ in range(6):
                p(torch.randn(shape, generator=g))
        return convert_fx(p)


def _check_torchscript(path, qm, shape, engine):
    """The converted TorchScript file against PyTorch's output codes on onert and TICO."""
    x = Q.grid_input(qm, shape, qmax=127 if engine == "x86" else 255)
    ref = Q.reference(qm, x, engine)
    conv = api.convert(path, api.ConvertOptions(profile="onert", input_shapes=[list(shape)]))
    res = {}
    for label, run in (("onert", runtimes.run_onert), ("tico", runtimes.run_tico)):
        y = run(conv.circle, [x])[0]
        res[label] = int(np.rint(np.abs(y.astype(np.float64) - ref.out.astype(np.float64)) / ref.qparams.scale).max())
    if ONE_BIN:
        luci = api.convert(path, api.ConvertOptions(profile="luci", input_shapes=[list(shape)]))
        res.update(_one_tools(os.path.dirname(path), conv, luci, [x], ref.out, ref.qparams.scale))
    print("max LSB", res)
    assert all(v <= LIMIT for v in res.values()), res


def test_fx_quantized_layer_norm(tmp_path):
    check_fx(tmp_path, lambda s, x: s.ln(x), (2, 8, 16), {"ln": nn.LayerNorm(16)}, kinds=("quantized::layer_norm",))


def test_fx_quantized_layer_norm_channels_last(tmp_path):
    check_fx(tmp_path, lambda s, x: s.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), (1, 8, 5, 6),
             {"ln": nn.LayerNorm(8, eps=1e-6)}, kinds=("quantized::layer_norm",))


def test_fx_float_layer_norm(tmp_path):
    """A qconfig that leaves LayerNorm float: aten::layer_norm between dequantize and quantize."""
    check_fx(tmp_path, lambda s, x: torch.cat([s.ln(x)], -1), (2, 8, 16), {"ln": nn.LayerNorm(16)},
             kinds=("aten::layer_norm",), float_ops=(nn.LayerNorm,))


def test_fx_quantized_matmul(tmp_path):
    check_fx(tmp_path, lambda s, x: torch.matmul(x, x.transpose(-2, -1)), (1, 2, 6, 8),
             kinds=("quantized::matmul",))


@pytest.mark.parametrize("fn,kind", [(torch.matmul, "aten::matmul"), (torch.bmm, "aten::bmm")])
def test_fx_float_matmul(tmp_path, fn, kind):
    check_fx(tmp_path, lambda s, x: torch.cat([fn(x, x.transpose(-2, -1))], -1), (2, 6, 8),
             kinds=(kind,), float_ops=(fn,))


def test_fx_float_sdpa(tmp_path):
    check_fx(tmp_path, lambda s, x: torch.cat([F.scaled_dot_product_attention(x, x, x, is_causal=True)], -1),
             (1, 2, 6, 8), kinds=("aten::scaled_dot_product_attention",))


@pytest.mark.parametrize("engine", Q.ENGINES)
def test_eager_quantized_layer_norm(tmp_path, engine):
    """Eager PTQ swaps nn.LayerNorm for its quantized module (quantized::layer_norm in the trace)."""
    shape = (2, 8, 16)
    qm = Q.quantize_eager(Q._Seq([("ln", nn.LayerNorm(16))]), engine, shape)
    path = os.path.join(str(tmp_path), "ln.pt")
    traced = Q.trace_and_save(qm, shape, path, engine=engine)
    assert "quantized::layer_norm" in set(n.kind() for n in traced.inlined_graph.nodes())
    _check_torchscript(path, qm, shape, engine)
