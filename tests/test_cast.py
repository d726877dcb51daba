"""Issue 10: an integer mask input cast to float (BERT's additive attention mask) -> CAST.

``attention_mask`` (int64, 0/1) -> unsqueeze (the integers move unchanged: RESHAPE of int64) ->
``to(float32)`` (CAST INT64->FLOAT32, exact) -> ``1 - m`` -> ``* -10000`` (XNNPACK quantizes both)
-> read as scaled_dot_product_attention's attn_mask. Oracles: PyTorch's own program, fed real
0/1 masks with masked positions, within 1 LSB on onert, TICO and (with ONE_BIN_DIR)
luci-interpreter; the BERT circles pass ONE's tools.
"""
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import transformer_models as T
from oracles import lsb, run_onert, run_tico
from onelib.pytorch_quant import api, runtimes


class MaskAdd(nn.Module):
    """x + (1 - mask[:, None, None, :].float()) * -10000: the mask chain alone (4-D, as BERT's)."""

    def forward(self, x, mask):
        m = mask[:, None, None, :].to(torch.float32)
        return x + (1.0 - m) * -10000.0


def _mask_inputs(g):
    mask = torch.ones(1, T.SEQ, dtype=torch.int64)
    mask[:, T.SEQ - 1 - int(torch.randint(0, 3, (1,), generator=g)):] = 0
    return torch.randn(1, 2, T.SEQ, T.SEQ, generator=g), mask


@pytest.fixture
def mask_model(monkeypatch):
    monkeypatch.setitem(T.MODELS, "mask_add", (MaskAdd, _mask_inputs))


def _masks(n, seed=7):
    """0/1 masks with 1..n masked tail positions, and one with a masked position inside."""
    out = []
    for k in range(1, n + 1):
        m = np.ones((1, T.SEQ), np.int64)
        m[:, T.SEQ - k:] = 0
        out.append(m)
    m = np.ones((1, T.SEQ), np.int64)
    m[:, 2] = 0
    return out + [m]


def _output_scale(conv):
    g = conv.graph
    prod = dict((id(o), op) for op in g.ops for o in op.outputs)
    op = prod[id(g.outputs[0])]
    assert op.kind == "DEQUANTIZE", op.kind
    return float(op.inputs[0].qparams.scale[0])


@pytest.mark.parametrize("profile", ["onert", "luci"])
def test_mask_cast_within_1_lsb(mask_model, profile):
    built = T.build("mask_add", "xnnpack")
    conv = api.convert(built.artifact, api.ConvertOptions(profile=profile))
    casts = [op for op in conv.graph.ops if op.kind == "CAST"]
    assert len(casts) == 1 and casts[0].inputs[0].dtype == "int64" and casts[0].outputs[0].dtype == "float32"
    assert casts[0].attrs == {"inDataType": 4, "outDataType": 0}
    # the int64 mask is never transposed (onert has no int64 TRANSPOSE): cast before the layout change
    assert not [op for op in conv.graph.ops if op.kind == "TRANSPOSE" and op.inputs[0].dtype == "int64"]
    scale = _output_scale(conv)
    g = torch.Generator().manual_seed(3)
    for mask in _masks(3):
        x = torch.randn(1, 2, T.SEQ, T.SEQ, generator=g)
        want = built.artifact.module()(x, torch.from_numpy(mask)).detach().numpy()
        feed = [x.numpy(), mask]
        got = {"onert": run_onert(conv.circle, feed)[0], "tico": run_tico(conv.circle, feed)[0]}
        if runtimes.luci_interpreter_path():
            got["luci-interpreter"] = runtimes.run_luci_interpreter(conv.circle, feed)[0]
        for who, out in got.items():
            assert lsb(want, out, scale) <= 1, (who, mask, lsb(want, out, scale))


def test_cast_of_a_float_tensor_is_listed():
    class ToFloat(nn.Module):
        def forward(self, x):
            return x.to(torch.float16).to(torch.float32) + 1

    ep = torch.export.export(ToFloat().eval(), (torch.randn(1, 4),))
    from onelib.pytorch_quant.errors import UnsupportedOpsError
    with pytest.raises(UnsupportedOpsError, match="only an integer tensor to float32 converts"):
        api.convert(ep)


@pytest.mark.parametrize("recipe,runtime", [("xnnpack", "tico"), ("xnnpack", "onert"), ("x86", "tico")])
def test_bert_per_op_within_1_lsb_with_real_masks(recipe, runtime, tmp_path):
    """BERT fed PyTorch's ids and 0/1 masks with masked positions: every op, fed
    PyTorch's own inputs, within 1 LSB (float rows: the same floats); the mask chain (CAST, 1 - m,
    * -10000 and their quantizers) exact also when computed from the model inputs. The final
    XNNPACK output is not compared for 1 LSB: 1-LSB steps of other ops add up through two
    layers, GELU and tanh (up to 13 LSB, also with an all-ones mask); X86's float output is."""
    from onelib.pytorch_quant import report
    built = T.build("bert", recipe, str(tmp_path))
    ids = torch.randint(0, T.VOCAB, (1, T.SEQ), generator=torch.Generator().manual_seed(5)).numpy()
    for mask in _masks(2)[1:]:
        rep = report.fidelity(built.path, api.ConvertOptions(profile="onert"), x=[ids, mask], runtime=runtime)
        assert rep.final["error"] is None, rep.final
        rows = dict((r["name"], r) for r in rep.layers)
        for r in rep.layers:
            per = r["per_op"]
            assert per["error"] is None, r
            if per["max_lsb"] is not None:
                assert per["max_lsb"] <= 1, r
            else:   # float tensors: float ops computed as PyTorch does
                assert per["max_abs"] <= 1e-5, r
        assert "CAST" in rows["to"]["circle_ops"], rows["to"]
        if recipe == "xnnpack":   # XNNPACK quantizes 1 - m and the additive mask
            for name in ("rsub/quantize", "mul/quantize"):
                assert rows[name]["per_op"]["max_lsb"] == 0 and rows[name]["accumulated"]["max_lsb"] == 0, \
                    rows[name]
        else:   # X86 leaves them float
            assert rows["rsub"]["per_op"]["max_abs"] == 0 and rows["mul"]["per_op"]["max_abs"] == 0, rows
            assert rep.final["max_abs"] <= 1e-5, rep.final


@pytest.mark.parametrize("recipe", ["xnnpack", "x86"])
@pytest.mark.parametrize("profile", ["luci", "onert"])
def test_bert_circles_pass_one_tools(recipe, profile, tmp_path):
    """circle-quantizer --fake_quantize, circle2circle O1 and luci's verifier (test_one_tools.judge)."""
    import test_one_tools as O
    if O._tool("circle-quantizer") is None:
        pytest.skip("ONE's tools not found: set ONE_BIN_DIR")
    built = T.build("bert", recipe)
    conv = api.convert(built.artifact, api.ConvertOptions(profile=profile))
    assert [op for op in conv.graph.ops if op.kind == "CAST"]
    cpath = os.path.join(str(tmp_path), "m.circle")
    conv.save(cpath)
    assert O.judge(cpath, conv.circle) == {}


def test_cast_lowering_quantizes_where_pytorch_quantizes_the_result():
    """A cast whose every reader quantizes (qdq.py gives it that grid): CAST, then QUANTIZE; a
    4-D integer is cast in PyTorch's order (TRANSPOSE of the float result only)."""
    from onelib.pytorch_quant.ir import Graph, Op, QParams, Tensor
    from onelib.pytorch_quant.ops.cast import lower_cast
    from onelib.pytorch_quant.ops.ctx import LowerCtx
    for shape in ((1, 8), (1, 1, 1, 8)):
        ctx = LowerCtx(Graph(source="t"), options=None)
        src = Tensor("mask", shape, "int64")
        ctx.define(src, Tensor("mask", shape, "int64"))   # as a RESHAPE in PyTorch's order gives it
        for q in (None, QParams(0.5, 3)):
            out = Tensor("to", shape, "int8" if q else "float32", q)
            del ctx.out.ops[:]
            lower_cast(ctx, Op("cast", [src], [out], {"dtype": "float32"}, "to"))
            kinds = [o.kind for o in ctx.out.ops]
            want = ["CAST"] + (["QUANTIZE"] if q else [])
            if len(shape) == 4:   # the input to PyTorch order, the result back to NHWC (pairs cancel later)
                assert kinds[0] == "TRANSPOSE" and kinds[-1] == "TRANSPOSE", kinds
                kinds = kinds[1:-1]
            assert kinds == want, kinds
            cast = [o for o in ctx.out.ops if o.kind == "CAST"][0]
            assert cast.inputs[0].dtype == "int64" and cast.outputs[0].dtype == "float32"
            assert ctx.value(out).dtype == out.dtype and (ctx.value(out).qparams is not None) == bool(q)
