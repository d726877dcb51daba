"""--profile luci|onert: what each writes, checked on the graph and numerically.

* luci (default): no float op between the model's input QUANTIZE and output DEQUANTIZE (PT2E
  XNNPACK and eager/FX networks), one weight granularity per model, no uint8 PADV2 (luci's fake
  quantization and circle2circle refuse it), the layout TRANSPOSE on integers.
* onert: the per-channel FULLY_CONNECTED as a 1x1 CONV_2D, hardswish and uint8 MUL in float.
* Padding with a code other than the zero point (max pooling on a grid whose zero point is not
  its lowest code, a constant pad of another value) as CONCATENATION with constant blocks: the
  same codes as PyTorch on onert and TICO, exactly (there is no arithmetic to round).
"""
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import archmodels as A
import pt2models as P
import qmodels as Q
from oracles import run_onert, run_tico
from onelib.pytorch_quant import api
from onelib.pytorch_quant.passes.profiles import onert_hazards


def float_ops(graph):
    """Ops of a circle-stage graph that read or write a float activation, other than the QUANTIZE
    of a float model input and the DEQUANTIZE of a float model output."""
    ins = set(id(t) for t in graph.inputs)
    outs = set(id(t) for t in graph.outputs)
    found = []
    for op in graph.ops:
        if op.kind == "QUANTIZE" and id(op.inputs[0]) in ins:
            continue
        if op.kind == "DEQUANTIZE" and id(op.outputs[0]) in outs:
            continue
        acts = [t for t in op.inputs + op.outputs if t is not None and not t.is_const]
        if any(t.qparams is None and t.dtype == "float32" for t in acts):
            found.append("%s (%s)" % (op.name, op.kind))
    return found


def granularities(graph):
    kinds = set()
    for op in graph.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED") and \
                op.inputs[1] is not None and op.inputs[1].qparams is not None:
            kinds.add("layer" if op.inputs[1].qparams.per_tensor else "channel")
    return kinds


EAGER_CASES = [(a, "ptq", "x86") for a in A.ARCHS] + [(a, "fx", "qnnpack") for a in A.FX_ARCHS]


@pytest.mark.parametrize("case", EAGER_CASES, ids=["-".join(c) for c in EAGER_CASES])
def test_luci_profile_fully_quantized_eager(case, tmp_path):
    path, shape, _, _ = A.build(*case, folder=tmp_path)
    conv = api.convert(path, api.ConvertOptions(input_shapes=[list(shape)]))
    g = conv.graph
    assert float_ops(g) == [], "float ops left by the luci profile: %s" % float_ops(g)
    assert len(granularities(g)) <= 1
    assert "PADV2" not in [op.kind for op in g.ops]
    # the float input is quantized first, the layout change runs on integers
    first = [op for op in g.ops if g.inputs[0] in op.inputs]
    assert [op.kind for op in first] == ["QUANTIZE"]


# every op of these is annotated by the XNNPACK quantizer (tests/test_pt2.py checks their numbers
# on the same default profile); conv_hardswish and friends are left float by PyTorch itself
PT2_CASES = ["mobilenet", "basic_block", "inverted_residual", "conv_maxpool", "cat", "slice_features"]


@pytest.mark.parametrize("name", PT2_CASES)
def test_luci_profile_fully_quantized_pt2(name, tmp_path):
    q, path, x, want = P.built_once({}, str(tmp_path), name, "xnnpack")
    conv = api.convert(path, api.ConvertOptions())
    g = conv.graph
    assert float_ops(g) == [], "float ops left by the luci profile: %s" % float_ops(g)
    assert len(granularities(g)) <= 1
    assert "PADV2" not in [op.kind for op in g.ops]


def test_onert_profile_forms(tmp_path):
    path, shape, _, _ = A.build("mobilenet_v3", "ptq", "x86", tmp_path)
    luci = api.convert(path, api.ConvertOptions(input_shapes=[list(shape)])).graph
    onert = api.convert(path, api.ConvertOptions(input_shapes=[list(shape)], profile="onert")).graph
    kinds_l = [op.kind for op in luci.ops]
    kinds_o = [op.kind for op in onert.ops]
    # hardswish: integer ADD/MUL/MUL for luci (circle-quantizer's fake quantization refuses a
    # HARD_SWISH), float between DEQUANTIZE and QUANTIZE for onert
    assert "HARD_SWISH" not in kinds_l and "HARD_SWISH" not in kinds_o
    assert float_ops(luci) == [] and float_ops(onert) != []
    assert not any(op.kind == "MUL" and op.outputs[0].qparams is not None for op in onert.ops)
    assert not any(op.kind == "FULLY_CONNECTED" and not op.inputs[1].qparams.per_tensor for op in onert.ops)
    assert onert_hazards(onert) == []
    assert any("uint8 MUL" in h for h in onert_hazards(luci))
    # the deprecated flag is the onert profile
    assert api.ConvertOptions(fc_as_conv=True).profile == "onert"
    with pytest.raises(api.ConversionError):
        api.ConvertOptions(profile="npu")
    with pytest.raises(api.ConversionError):
        api.ConvertOptions(profile="luci", fc_as_conv=True)


# QuantStub (fixed qparams) -> op -> DeQuantStub, as the exhaustive unary tests build it
from test_unary_exhaustive import _Fn, _Model as _PadModel  # noqa: E402


PAD_CASES = {
    # a max pool on a grid whose zero point (128) is not its lowest code: PyTorch pads with -inf
    "maxpool_k3s2p1": lambda: nn.MaxPool2d(3, 2, 1),
    "maxpool_k2s2p1_ceil": lambda: nn.MaxPool2d(2, 2, 1, ceil_mode=True),
    "maxpool_k4s1p2": lambda: nn.MaxPool2d(4, 1, 2),
    "maxpool_k5s1p2_same": lambda: nn.MaxPool2d(5, 1, 2),   # TFLite's SAME windows: no padding op
    # a constant pad of a value other than 0
    "pad_value": lambda: _Fn(lambda x: F.pad(x, (1, 2, 0, 3), value=0.75)),
}


@pytest.mark.parametrize("profile", ["luci", "onert"])
@pytest.mark.parametrize("name", sorted(PAD_CASES))
def test_padding_with_another_code(name, profile, tmp_path):
    in_q = (0.05, 128)
    shape = (1, 3, 9, 10)
    model = _PadModel(PAD_CASES[name](), in_q).eval()
    path = os.path.join(str(tmp_path), name + ".pt")
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, torch.zeros(shape), check_trace=False), path)
    conv = api.convert(path, api.ConvertOptions(input_shapes=[list(shape)], input_type="uint8",
                                                output_type="uint8", profile=profile))
    kinds = [op.kind for op in conv.graph.ops]
    assert "PADV2" not in kinds
    assert ("CONCATENATION" in kinds) == (not name.endswith("_same")), kinds
    codes = np.random.RandomState(3).randint(0, 256, size=shape).astype(np.uint8)
    with torch.no_grad():
        qx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(codes), in_q[0], in_q[1])
        want = model.op(qx).int_repr().numpy()
    for run in (run_onert, run_tico):
        got = run(conv.circle, [codes])[0]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_driver_names_the_profile_and_warns_for_onert(tmp_path):
    """One line naming the profile; with luci, a warning when onert/luci-interpreter would get the
    circle wrong (a per-channel Linear under x86), suggesting --profile onert; none with onert."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    factory, shape = Q.SINGLE_OP_MODELS["linear"]
    qm = Q.quantize_eager(factory(), "x86", shape)
    path = os.path.join(str(tmp_path), "m.pt")
    Q.trace_and_save(qm, shape, path, engine="x86")
    env = dict(os.environ)
    env.pop("ONE_BIN_DIR", None)
    outs = {}
    for profile in ("luci", "onert"):
        out = os.path.join(str(tmp_path), "m_%s.circle" % profile)
        p = subprocess.run([sys.executable, os.path.join(root, "one-import-pytorch-quant"), "-i", path, "-o", out,
                            "--input_shapes", ",".join(map(str, shape)), "--profile", profile],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300)
        assert p.returncode == 0, p.stderr.decode()
        outs[profile] = (p.stdout.decode(), p.stderr.decode())
    assert "profile luci" in outs["luci"][0] and "profile onert" in outs["onert"][0]
    assert "--profile onert" in outs["luci"][1] and "FULLY_CONNECTED" in outs["luci"][1]
    assert outs["onert"][1] == ""


MEAN_CASES = {
    "hw": lambda x: x.mean([2, 3]),
    "hw_keepdim": lambda x: x.mean([2, 3], keepdim=True),
    "c": lambda x: x.mean([1]),
    "c_keepdim": lambda x: x.mean([1], keepdim=True),
    "cw": lambda x: x.mean([1, 3]),
    "flat_last": lambda x: x.flatten(2).mean(-1),
}


def mean_circle(name, tmp_path, profile="onert"):
    """(circle Conversion, input codes, PyTorch's output codes) of one quantized mean."""
    in_q, shape = (0.05, 128), (1, 8, 5, 6)
    model = _PadModel(_Fn(MEAN_CASES[name]), in_q).eval()
    path = os.path.join(str(tmp_path), "mean_%s.pt" % name)
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, torch.zeros(shape), check_trace=False), path)
    conv = api.convert(path, api.ConvertOptions(input_shapes=[list(shape)], input_type="uint8",
                                                output_type="uint8", profile=profile))
    codes = np.random.RandomState(5).randint(0, 256, size=shape).astype(np.uint8)
    with torch.no_grad():
        qx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(codes), in_q[0], in_q[1])
        want = model.op(qx).int_repr().numpy()
    return conv, codes, want


@pytest.mark.parametrize("name", sorted(MEAN_CASES))
def test_onert_profile_mean_is_4d_over_hw(name, tmp_path):
    """onert profile: every quantized MEAN is the one form luci-interpreter runs (4-D, keepDims,
    axes 1 and 2; tests/test_one_tools.py runs it there), within 1 LSB on onert and TICO."""
    conv, codes, want = mean_circle(name, tmp_path)
    means = [op for op in conv.graph.ops if op.kind == "MEAN"]
    assert means and all(len(op.inputs[0].shape) == 4 and op.attrs["keepDims"]
                         and sorted(op.inputs[1].data.tolist()) == [1, 2] for op in means)
    for run in (run_onert, run_tico):
        got = run(conv.circle, [codes])[0]
        assert got.shape == want.shape
        assert int(np.abs(got.astype(np.int64) - want.astype(np.int64)).max()) <= 1


class _Broadcast5D(nn.Module):
    """x seen as [1, W, heads, N, N] combined with a [1, W, 1, N, N] parameter (Swin's window
    attention mask is added this way)."""

    def __init__(self, kind):
        super(_Broadcast5D, self).__init__()
        self.kind = kind
        self.p = nn.Parameter(torch.randn(1, 4, 1, 6, 6))

    def forward(self, x):
        v = x.view(1, 4, 2, 6, 6)
        v = v + self.p if self.kind == "add" else v * self.p
        return v.view(8, 36)


@pytest.mark.parametrize("kind", ["add", "mul"])
def test_onert_profile_broadcast_is_within_4d(kind, tmp_path):
    """onert profile: an ADD or MUL broadcasting at rank 5 (luci-interpreter aborts on it,
    ``hazards.BROADCAST_5D``) runs on views of rank 4 or less; the same as PyTorch within 1 LSB
    on luci-interpreter (when ONE_BIN_DIR names ONE's bin folder), onert and TICO."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from oracles import lsb
    from onelib.pytorch_quant.runtimes import luci_interpreter_path, run_luci_interpreter
    import torch.ao.quantization.fx._decomposed  # noqa: F401
    torch.manual_seed(0)
    model = _Broadcast5D(kind).eval()
    example = (torch.randn(8, 36),)
    prepared = prepare_pt2e(torch.export.export(model, example, strict=True).module(), P.QUANTIZERS["xnnpack"]())
    with torch.no_grad():
        for _ in range(4):
            prepared(torch.randn(8, 36))
    q = P.Quantized("broadcast_" + kind, "xnnpack", torch.export.export(convert_pt2e(prepared), example), [(8, 36)])
    path = q.save(os.path.join(str(tmp_path), "broadcast_%s.pt2" % kind))
    x = P.grid_inputs(q)
    want = q.reference(x)[0]
    luci = api.convert(path, api.ConvertOptions())
    assert any("ADD or MUL broadcasting at rank 5" in h for h in onert_hazards(luci.graph))
    conv = api.convert(path, api.ConvertOptions(profile="onert"))
    ops = [op for op in conv.graph.ops if op.kind == kind.upper()]
    assert ops and all(len(t.shape) <= 4 for op in ops for t in op.inputs + op.outputs)
    runs = [run_onert, run_tico]
    if luci_interpreter_path() is not None:
        runs.append(run_luci_interpreter)
    for run in runs:
        got = run(conv.circle, x)[0]
        assert got.shape == want.shape
        assert lsb(got, want, q.output_scale()[0]) <= 1, run.__name__
