"""verify (onelib/pytorch_quant/verify/): a good model passes (and runs on onert); each broken
model trips exactly its rule."""

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

from circle_build import CircleBuilder
from onelib.pytorch_quant import verify
from onelib.pytorch_quant.verify import errors, format_report, verify_circle

IN_SCALE, IN_ZP = 0.02, 128
CONV_W_SCALES = np.array([0.010, 0.020, 0.015], np.float32)
CONV_OUT = (0.05, 100)
FC_W_SCALE = 0.01
FC_OUT = (0.08, 128)


def _bias_scale(in_scale, w_scales):
    return np.float32(in_scale) * np.asarray(w_scales, np.float32)  # luci: float32 product


def good_model(*, fc_per_channel=False, standalone_relu=False, edit=None,
               set_deprecated_builtin_code=True, return_parts=False):
    """QUANTIZE -> CONV_2D (u8 per-channel, zp 128) -> RESHAPE -> FULLY_CONNECTED -> LOGISTIC -> DEQUANTIZE.

    edit(builder) may break one thing before the model is serialised.
    """
    rng = np.random.default_rng(7)
    b = CircleBuilder()
    x = b.tensor("input", [1, 4, 4, 2], "float32")
    xq = b.tensor("input.q", [1, 4, 4, 2], "uint8", scale=IN_SCALE, zero_point=IN_ZP)
    b.op("QUANTIZE", [x], [xq])

    conv_w = (rng.integers(-127, 128, size=(3, 3, 3, 2)) + 128).astype(np.uint8)  # int8 + 128
    conv_b = rng.integers(-300, 300, size=3).astype(np.int32)
    w = b.tensor("conv.weight", [3, 3, 3, 2], data=conv_w, scale=CONV_W_SCALES,
                 zero_point=[128] * 3, quantized_dimension=0)
    bias = b.tensor("conv.bias", [3], data=conv_b, scale=_bias_scale(IN_SCALE, CONV_W_SCALES),
                    zero_point=[0] * 3)
    c = b.tensor("conv", [1, 2, 2, 3], "uint8", scale=CONV_OUT[0], zero_point=CONV_OUT[1])
    b.op("CONV_2D", [xq, w, bias], [c], "Conv2DOptions", padding=1, strideW=1, strideH=1,
         dilationWFactor=1, dilationHFactor=1)

    shape = b.tensor("flatten.shape", [2], data=np.array([1, 12], np.int32))
    r = b.tensor("flatten", [1, 12], "uint8", scale=CONV_OUT[0], zero_point=CONV_OUT[1])
    b.op("RESHAPE", [c, shape], [r], "ReshapeOptions", newShape=[1, 12])

    fc_w = (rng.integers(-127, 128, size=(5, 12)) + 128).astype(np.uint8)
    fc_b = rng.integers(-500, 500, size=5).astype(np.int32)
    if fc_per_channel:
        fc_scales = np.array([0.01, 0.02, 0.005, 0.01, 0.03], np.float32)
        fw = b.tensor("fc.weight", [5, 12], data=fc_w, scale=fc_scales, zero_point=[128] * 5)
        fb = b.tensor("fc.bias", [5], data=fc_b, scale=_bias_scale(CONV_OUT[0], fc_scales),
                      zero_point=[0] * 5)
    else:
        # one scale repeated per channel: the conv is per-channel, and luci verifies one
        # granularity for the whole model (this is how the converter writes per-tensor weights)
        fw = b.tensor("fc.weight", [5, 12], data=fc_w, scale=[FC_W_SCALE] * 5, zero_point=[128] * 5)
        fb = b.tensor("fc.bias", [5], data=fc_b, scale=_bias_scale(CONV_OUT[0], [FC_W_SCALE] * 5),
                      zero_point=[0] * 5)
    f = b.tensor("fc", [1, 5], "uint8", scale=FC_OUT[0], zero_point=FC_OUT[1])
    b.op("FULLY_CONNECTED", [r, fw, fb], [f], "FullyConnectedOptions", fusedActivationFunction=0)

    if standalone_relu:
        relu = b.tensor("relu", [1, 5], "uint8", scale=FC_OUT[0], zero_point=FC_OUT[1])
        b.op("RELU", [f], [relu])
        f = relu

    s = b.tensor("sigmoid", [1, 5], "uint8", scale=1.0 / 256, zero_point=0)
    b.op("LOGISTIC", [f], [s])
    y = b.tensor("output", [1, 5], "float32")
    b.op("DEQUANTIZE", [s], [y])
    if edit is not None:
        edit(b)
    buf = b.finish([x], [y], set_deprecated_builtin_code=set_deprecated_builtin_code)
    if return_parts:
        return buf, dict(conv_w=conv_w, conv_b=conv_b, fc_w=fc_w, fc_b=fc_b)
    return buf


def dw_model(quantized_dimension=3):
    """QUANTIZE -> DEPTHWISE_CONV_2D (u8 per-channel on axis 3) -> DEQUANTIZE."""
    rng = np.random.default_rng(3)
    b = CircleBuilder()
    x = b.tensor("input", [1, 5, 5, 4], "float32")
    xq = b.tensor("input.q", [1, 5, 5, 4], "uint8", scale=IN_SCALE, zero_point=IN_ZP)
    b.op("QUANTIZE", [x], [xq])
    scales = np.array([0.01, 0.02, 0.03, 0.04], np.float32)
    w = b.tensor("dw.weight", [1, 3, 3, 4], data=(rng.integers(-127, 128, (1, 3, 3, 4)) + 128).astype(np.uint8),
                 scale=scales, zero_point=[128] * 4, quantized_dimension=quantized_dimension)
    bias = b.tensor("dw.bias", [4], data=rng.integers(-100, 100, 4).astype(np.int32),
                    scale=_bias_scale(IN_SCALE, scales))
    d = b.tensor("dw", [1, 3, 3, 4], "uint8", scale=0.05, zero_point=128)
    b.op("DEPTHWISE_CONV_2D", [xq, w, bias], [d], "DepthwiseConv2DOptions", padding=1, strideW=1,
         strideH=1, depthMultiplier=1, dilationWFactor=1, dilationHFactor=1)
    y = b.tensor("output", [1, 3, 3, 4], "float32")
    b.op("DEQUANTIZE", [d], [y])
    return b.finish([x], [y])


def rules_fired(findings, severity=None):
    return {f.rule for f in findings if severity is None or f.severity == severity}


def only(findings, rule, severity="error"):
    """Assert exactly `rule` fired (at that severity, nothing else of any severity); return its findings."""
    assert rules_fired(findings) == {rule}, format_report(findings)
    hits = [f for f in findings if f.rule == rule]
    assert all(f.severity == severity for f in hits), format_report(findings)
    return hits


# --------------------------------------------------------------------------------------------
# the good models

def test_good_model_has_no_findings():
    findings = verify_circle(good_model())
    assert findings == [], format_report(findings)
    assert verify_circle(good_model(), target="luci") == []


def test_good_depthwise_model_has_no_findings():
    assert verify_circle(dw_model()) == []


def _fake_quant_reference(x, parts):
    """What the good model computes, in float with each activation rounded to its own grid."""
    def q(v, s, z):
        return np.clip(np.floor(v / s + 0.5) + z, 0, 255)

    xq = q(x, IN_SCALE, IN_ZP)
    xf = (xq - IN_ZP) * IN_SCALE
    w = (parts["conv_w"].astype(np.float64) - 128) * CONV_W_SCALES.reshape(3, 1, 1, 1)
    bias = parts["conv_b"] * _bias_scale(IN_SCALE, CONV_W_SCALES).astype(np.float64)
    conv = np.zeros((1, 2, 2, 3))
    for i in range(2):
        for j in range(2):
            patch = xf[0, i:i + 3, j:j + 3, :]
            conv[0, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2])) + bias
    cq = q(conv, *CONV_OUT)
    flat = ((cq - CONV_OUT[1]) * CONV_OUT[0]).reshape(1, 12)
    fw = (parts["fc_w"].astype(np.float64) - 128) * FC_W_SCALE
    fc = flat @ fw.T + parts["fc_b"] * float(_bias_scale(CONV_OUT[0], [FC_W_SCALE])[0])
    fq = q(fc, *FC_OUT)
    sig = 1 / (1 + np.exp(-(fq - FC_OUT[1]) * FC_OUT[0]))
    return q(sig, 1.0 / 256, 0) / 256


_ONERT_RUN = textwrap.dedent("""
    import sys, numpy as np, onert
    from onert.native.libnnfw_api_pybind import prepare_config
    path, inp, out = sys.argv[1:4]
    s = onert.infer.session(path, "cpu")
    raw = s.session
    raw.set_prepare_config(prepare_config.ENABLE_INTERNAL_OUTPUT_ALLOC)
    raw.prepare()
    raw.set_input(0, np.ascontiguousarray(np.load(inp)))
    raw.run()
    np.save(out, np.array(raw.get_output(0)))
""")


def test_good_model_runs_on_onert(tmp_path):
    buf, parts = good_model(return_parts=True)
    model = tmp_path / "good.circle"  # onert picks its loader by extension
    model.write_bytes(buf)
    x = np.random.default_rng(0).uniform(-1.5, 1.5, (1, 4, 4, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-c", _ONERT_RUN, str(model), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (1, 5) and y.dtype == np.float32
    ref = _fake_quant_reference(x.astype(np.float64), parts)
    assert np.abs(y - ref).max() <= 2.0 / 256, (y, ref)
    assert len(np.unique(y)) > 1  # not saturated: the qparams are realistic


# --------------------------------------------------------------------------------------------
# one broken model per rule

def test_bias_scale_off_by_1e_6_relative():
    def edit(b):
        b.t("conv.bias").quantization.scale[1] *= 1 + 1e-6
    hits = only(verify_circle(good_model(edit=edit)), "bias_scale")
    assert hits[0].tensor == "conv.bias" and hits[0].op == "#1 CONV_2D"
    assert "scale[1]" in hits[0].message


def test_bias_zero_point_nonzero():
    def edit(b):
        b.t("fc.bias").quantization.zeroPoint = [3] * 5
    hits = only(verify_circle(good_model(edit=edit)), "bias_scale")
    assert hits[0].tensor == "fc.bias" and "zero_point" in hits[0].message


def test_bias_wrong_dtype():
    def edit(b):
        b.set_data("conv.bias", np.zeros(3, np.int64))
    hits = only(verify_circle(good_model(edit=edit)), "bias_scale")
    assert hits[0].tensor == "conv.bias" and "INT32" in hits[0].message


def test_bias_shared_by_two_ops():
    b = CircleBuilder()
    x = b.tensor("x", [1, 4], "uint8", scale=0.1, zero_point=128)
    w = b.tensor("w", [2, 4], data=np.full((2, 4), 130, np.uint8), scale=0.01, zero_point=128)
    bias = b.tensor("b", [2], data=np.array([5, -5], np.int32), scale=float(_bias_scale(0.1, [0.01])[0]))
    y1 = b.tensor("y1", [1, 2], "uint8", scale=0.2, zero_point=128)
    y2 = b.tensor("y2", [1, 2], "uint8", scale=0.2, zero_point=128)
    b.op("FULLY_CONNECTED", [x, w, bias], [y1], "FullyConnectedOptions")
    b.op("FULLY_CONNECTED", [x, w, bias], [y2], "FullyConnectedOptions")
    hits = only(verify_circle(b.finish([x], [y1, y2])), "bias_scale")
    assert {f.tensor for f in hits} == {"b"} and "shared" in hits[0].message


def test_int8_weights_in_u8_graph():
    def edit(b):
        t = b.t("conv.weight")
        b.set_data("conv.weight", np.zeros((3, 3, 3, 2), np.int8))
        t.quantization.zeroPoint = [0, 0, 0]
    findings = verify_circle(good_model(edit=edit))
    hits = only(findings, "onert_mixed_weight_dtype")
    assert hits[0].tensor == "conv.weight" and hits[0].op == "#1 CONV_2D"
    # luci rejects it too, so the rule is not one of the onert-only ones
    assert rules_fired(verify_circle(good_model(edit=edit), target="luci")) == {"onert_mixed_weight_dtype"}


def test_per_channel_activation():
    def edit(b):
        q = b.t("fc").quantization
        q.scale, q.zeroPoint = [0.08, 0.09], [128, 128]
    hits = only(verify_circle(good_model(edit=edit)), "per_tensor_activation")
    assert hits[0].tensor == "fc" and hits[0].op == "#3 FULLY_CONNECTED"


def test_missing_zero_point():
    def edit(b):
        b.t("fc").quantization.zeroPoint = []
    hits = only(verify_circle(good_model(edit=edit)), "qparam_complete")
    assert hits[0].tensor == "fc" and "zero_point" in hits[0].message


def test_u8_tensor_without_qparams():
    def edit(b):
        b.t("sigmoid").quantization = None
    hits = only(verify_circle(good_model(edit=edit)), "qparam_complete")
    assert hits[0].tensor == "sigmoid"


def test_wrong_quantized_dimension_for_depthwise():
    hits = only(verify_circle(dw_model(quantized_dimension=0)), "channel_granularity")
    assert hits[0].tensor == "dw.weight" and "quantized_dimension 0" in hits[0].message
    assert "needs 3" in hits[0].message


def test_bias_length_differs_from_weights():
    def edit(b):
        q = b.t("fc.bias").quantization
        q.scale, q.zeroPoint = list(q.scale) * 5, [0] * 25
    hits = only(verify_circle(good_model(edit=edit)), "channel_granularity")
    assert hits[0].tensor == "fc.bias"


def test_reshape_output_with_its_own_qparams():
    def edit(b):
        b.t("flatten").quantization.zeroPoint = [101]  # (a new scale would also break fc.bias)
    hits = only(verify_circle(good_model(edit=edit)), "shared_qparams")
    assert hits[0].tensor == "flatten" and hits[0].op == "#2 RESHAPE" and "'conv'" in hits[0].message


def test_logistic_with_wrong_qparams():
    def edit(b):
        q = b.t("sigmoid").quantization
        q.scale, q.zeroPoint = [1.0 / 255], [0]
    hits = only(verify_circle(good_model(edit=edit)), "fixed_qparams")
    assert hits[0].tensor == "sigmoid" and "1/256" in hits[0].message


def _softmax_model(scale, zp=0):
    b = CircleBuilder()
    x = b.tensor("logits", [1, 6], "uint8", scale=0.05, zero_point=128)
    y = b.tensor("probs", [1, 6], "uint8", scale=scale, zero_point=zp)
    b.op("SOFTMAX", [x], [y], "SoftmaxOptions", beta=1.0)
    return b.finish([x], [y])


def test_softmax_1_over_255_and_1_over_256():
    assert verify_circle(_softmax_model(1.0 / 255)) == []
    hits = only(verify_circle(_softmax_model(1.0 / 256)), "fixed_qparams", severity="warning")
    assert hits[0].tensor == "probs" and "1/255" in hits[0].message
    assert errors(verify_circle(_softmax_model(1.0 / 256))) == []
    hits = only(verify_circle(_softmax_model(1.0 / 128)), "fixed_qparams")
    assert hits[0].tensor == "probs"


def test_deprecated_builtin_code_left_zero():
    hits = only(verify_circle(good_model(set_deprecated_builtin_code=False)), "opcode_deprecated_builtin")
    ops = {f.op for f in hits}
    assert "#1 CONV_2D" in ops and "#3 FULLY_CONNECTED" in ops
    conv = next(f for f in hits if f.op == "#1 CONV_2D")
    assert conv.tensor == "conv" and "ADD" in conv.message


def test_per_channel_fc_is_an_onert_warning():
    findings = verify_circle(good_model(fc_per_channel=True))
    hits = only(findings, "onert_per_channel_fc", severity="warning")
    assert hits[0].tensor == "fc.weight" and hits[0].op == "#3 FULLY_CONNECTED"
    assert errors(findings) == []
    assert verify_circle(good_model(fc_per_channel=True), target="luci") == []


def test_standalone_relu_is_an_onert_warning():
    findings = verify_circle(good_model(standalone_relu=True))
    hits = only(findings, "onert_standalone_relu", severity="warning")
    assert hits[0].tensor == "fc" and hits[0].op == "#4 RELU"
    assert verify_circle(good_model(standalone_relu=True), target="luci") == []


def test_duplicate_tensor_names():
    def edit(b):
        b.t("fc").name = "flatten"  # now two tensors are called "flatten"
    hits = only(verify_circle(good_model(edit=edit)), "graph_io")
    assert hits[0].tensor == "flatten" and "unique" in hits[0].message


def test_conv_with_float_input_is_a_dtype_error():
    # a CONV_2D fed by the float graph input (QUANTIZE skipped) while its output is uint8
    def edit(b):
        b.operators[1].inputs[0] = 0
    hits = only(verify_circle(good_model(edit=edit)), "activation_dtype")
    assert hits[0].tensor == "input" and "FLOAT32" in hits[0].message


def test_float_island_is_allowed():
    # ... DEQUANTIZE -> float LOGISTIC -> QUANTIZE ... between quantized ops is legal
    b = CircleBuilder()
    x = b.tensor("x", [1, 4], "uint8", scale=0.1, zero_point=128)
    xf = b.tensor("x.f", [1, 4], "float32")
    b.op("DEQUANTIZE", [x], [xf])
    yf = b.tensor("y.f", [1, 4], "float32")
    b.op("LOGISTIC", [xf], [yf])
    y = b.tensor("y", [1, 4], "uint8", scale=1.0 / 256, zero_point=0)
    b.op("QUANTIZE", [yf], [y])
    assert verify_circle(b.finish([x], [y])) == []


def test_int8_model_is_reported_once():
    b = CircleBuilder()
    x = b.tensor("x", [1, 4], "int8", scale=0.1, zero_point=0)
    y = b.tensor("y", [1, 4], "int8", scale=0.1, zero_point=0)
    b.op("MAX_POOL_2D", [x], [y], "Pool2DOptions", filterWidth=1, filterHeight=1, strideW=1, strideH=1)
    hits = only(verify_circle(b.finish([x], [y])), "model_dtype")
    assert len(hits) == 1 and hits[0].tensor == "x"


def test_unparseable_bytes():
    findings = verify_circle(b"not a circle file at all")
    assert [f.rule for f in findings] == ["graph_io"] and errors(findings)


# --------------------------------------------------------------------------------------------
# API and report

def test_every_rule_is_registered_under_its_function_name():
    for name, r in verify.RULES.items():
        assert r.check.__name__ == name
        assert getattr(verify, name) is r.check
    assert set(verify.RULES) >= {
        "model_dtype", "activation_dtype", "per_tensor_activation", "qparam_complete",
        "channel_granularity", "bias_scale", "shared_qparams", "fixed_qparams",
        "opcode_deprecated_builtin", "graph_io", "onert_mixed_weight_dtype", "onert_per_channel_fc",
        "onert_standalone_relu"}


def test_finding_str_names_rule_op_and_tensor():
    def edit(b):
        b.t("conv.bias").quantization.zeroPoint = [0, 1, 0]
    f = verify_circle(good_model(edit=edit))[0]
    line = str(f)
    assert "\n" not in line
    for part in ("error", "bias_scale", "#1 CONV_2D", "conv.bias"):
        assert part in line


def test_main_exit_code_and_report(tmp_path, capsys):
    good = tmp_path / "good.circle"
    good.write_bytes(good_model())
    assert verify.main([str(good)]) == 0
    assert "0 error(s)" in capsys.readouterr().out

    def edit(b):
        b.t("flatten").quantization.zeroPoint = [99]
    bad = tmp_path / "bad.circle"
    bad.write_bytes(good_model(edit=edit))
    assert verify.main([str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("error [shared_qparams]") and out[-1] == "1 error(s), 0 warning(s)"

    warn = tmp_path / "warn.circle"
    warn.write_bytes(good_model(fc_per_channel=True))
    assert verify.main([str(warn)]) == 0
    assert verify.main(["--target", "luci", str(warn)]) == 0


def test_module_does_not_import_torch():
    code = ("import sys; import onelib.pytorch_quant.verify as v; "
            "v.verify_circle(open(sys.argv[1], 'rb').read()); assert 'torch' not in sys.modules")
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.circle")
        with open(p, "wb") as f:
            f.write(good_model())
        proc = subprocess.run([sys.executable, "-c", code, p], capture_output=True, text=True, env=env,
                              cwd=d, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _s16_model(bias_dtype=np.int64, weight_zp=0, logistic_scale=1.0 / 32768):
    b = CircleBuilder()
    x = b.tensor("x", [1, 4], "float32")
    xq = b.tensor("x.q", [1, 4], "int16", scale=1e-4)
    b.op("QUANTIZE", [x], [xq])
    ws = np.array([2e-4, 3e-4], np.float32)
    w = b.tensor("fc.weight", [2, 4], data=np.arange(8, dtype=np.int16).reshape(2, 4), scale=ws,
                 zero_point=[weight_zp] * 2)
    bias = b.tensor("fc.bias", [2], data=np.array([7, -7], bias_dtype), scale=_bias_scale(1e-4, ws))
    f = b.tensor("fc", [1, 2], "int16", scale=3e-4)
    b.op("FULLY_CONNECTED", [xq, w, bias], [f], "FullyConnectedOptions")
    s = b.tensor("sigmoid", [1, 2], "int16", scale=logistic_scale)
    b.op("LOGISTIC", [f], [s])
    y = b.tensor("y", [1, 2], "float32")
    b.op("DEQUANTIZE", [s], [y])
    return b.finish([x], [y])


def test_s16_model():
    assert verify_circle(_s16_model(), target="luci") == []
    hits = only(verify_circle(_s16_model(bias_dtype=np.int32), target="luci"), "bias_scale")
    assert hits[0].tensor == "fc.bias" and "INT64" in hits[0].message
    hits = only(verify_circle(_s16_model(weight_zp=3), target="luci"), "qparam_complete")
    assert hits[0].tensor == "fc.weight"
    hits = only(verify_circle(_s16_model(logistic_scale=1.0 / 256), target="luci"), "fixed_qparams")
    assert hits[0].tensor == "sigmoid" and "1/32768" in hits[0].message
