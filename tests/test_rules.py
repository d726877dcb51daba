"""Unit checks of the integer rules, on values computed independently of the converter."""
import os

import numpy as np
import pytest

import qmodels
from onelib.pytorch_quant import api
from onelib.pytorch_quant.ir import QParams, Tensor
from onelib.pytorch_quant.ops.quant import model_weight, quantize_bias


def read_circle(data):
    from circle_schema.v0_10.circle.Model import ModelT
    return ModelT.InitFromPackedBuf(data, 0)


def test_bias_scale_is_the_float32_product_and_ints_round_to_it():
    in_q = QParams(np.float32(0.0236), 3)
    w_scales = np.array([0.00123, 0.0411, 7.7e-5], np.float32)
    w_q = QParams(w_scales, [0, 0, 0], 0)
    b = Tensor("b", (3,), "float32", None, np.array([0.5, -1.25, 0.003], np.float32))
    qb = quantize_bias(b, in_q, w_q, "uint8", 3, "b")
    want_scale = np.float32(0.0236) * w_scales            # float32 times float32, as luci computes
    assert qb.dtype == "int32" and qb.qparams.scale.dtype == np.float32
    assert np.array_equal(qb.qparams.scale, want_scale)
    assert np.all(qb.qparams.zero_point == 0) and qb.qparams.axis == 0
    assert list(qb.data) == [int(round(0.5 / float(want_scale[0]))), int(round(-1.25 / float(want_scale[1]))),
                             int(round(float(np.float32(0.003)) / float(want_scale[2])))]
    # int16 models take an int64 bias
    assert quantize_bias(b, in_q, w_q, "int16", 3, "b").dtype == "int64"


def test_missing_bias_becomes_zeros_with_the_rule_scale():
    qb = quantize_bias(None, QParams(0.5, 0), QParams(np.array([0.25, 0.125], np.float32), [0, 0]), "uint8", 2, "b")
    assert list(qb.data) == [0, 0] and list(qb.qparams.scale) == [0.125, 0.0625]


def test_int8_weight_shift_is_exact():
    ints = np.array([[-128, -1, 0, 127]], np.int8)
    w = Tensor("w", ints.shape, "int8", QParams(np.array([0.02], np.float32), [0], 0), ints)
    u = model_weight(w, "uint8")
    assert u.dtype == "uint8" and list(u.data[0]) == [0, 127, 128, 255]
    assert list(u.qparams.zero_point) == [128]
    real_before = (ints.astype(np.int64) - 0) * 0.02
    real_after = (u.data.astype(np.int64) - 128) * 0.02
    assert np.array_equal(real_before, real_after)
    # an int16 model widens the int8 weight with the same scale and zero point 0
    s = model_weight(w, "int16")
    assert s.dtype == "int16" and list(s.data[0]) == [-128, -1, 0, 127] and list(s.qparams.zero_point) == [0]


def _convert_single(name, engine, tmp_path, **kw):
    factory, shape = qmodels.SINGLE_OP_MODELS[name]
    q = qmodels.quantize_eager(factory(), engine, shape)
    path = os.path.join(str(tmp_path), name + ".pt")
    qmodels.trace_and_save(q, shape, path, engine=engine)
    return q, api.convert(path, api.ConvertOptions(input_shapes=[list(shape)], **kw))


def test_depthwise_filter_is_1hwc_with_quantized_dimension_3(tmp_path):
    q, conv = _convert_single("depthwise_conv_mult2", "x86", tmp_path)
    m = read_circle(conv.circle)
    sg = m.subgraphs[0]
    dw = [op for op in sg.operators if m.operatorCodes[op.opcodeIndex].builtinCode == 4]  # DEPTHWISE_CONV_2D
    assert len(dw) == 1
    f = sg.tensors[dw[0].inputs[1]]
    assert list(f.shape) == [1, 3, 3, 8]
    assert f.quantization.quantizedDimension == 3 and len(f.quantization.scale) == 8
    w = q.conv.weight()  # torch [C*m, 1, kh, kw] qint8, per channel on dim 0
    want = w.int_repr().numpy().astype(np.int16).transpose(1, 2, 3, 0) + 128
    got = np.frombuffer(bytes(bytearray(m.buffers[f.buffer].data)), np.uint8).reshape(1, 3, 3, 8)
    assert np.array_equal(got, want)
    assert np.allclose(np.array(f.quantization.scale, np.float32), w.q_per_channel_scales().numpy().astype(np.float32), rtol=0, atol=0)
    assert list(f.quantization.zeroPoint) == [128] * 8


def test_flatten_of_a_map_keeps_pytorch_order(tmp_path):
    # a 4x4 map: NHWC inside circle, so PyTorch's C,H,W order needs a TRANSPOSE before RESHAPE
    # (here the map is the model input: its QUANTIZE comes first, on PyTorch's NCHW order, and the
    # NCHW->NHWC->NCHW transposes cancel, so RESHAPE reads the quantized input directly)
    q, conv = _convert_single("flatten", "x86", tmp_path)
    ops = conv.graph.ops
    i = [op.kind for op in ops].index("RESHAPE")
    before = [op for op in ops[:i] if op.kind == "TRANSPOSE"]
    if before:
        assert list(before[-1].inputs[1].data) == [0, 3, 1, 2]
    else:
        assert [op.kind for op in ops[:i]] == ["QUANTIZE"] and ops[0].inputs[0] is conv.graph.inputs[0]
        assert ops[i].inputs[0] is ops[0].outputs[0] and len(ops[0].outputs[0].shape) == 4


def test_opcodes_set_deprecated_builtin_code(tmp_path):
    q, conv = _convert_single("conv", "x86", tmp_path)
    for oc in read_circle(conv.circle).operatorCodes:
        assert oc.deprecatedBuiltinCode == min(oc.builtinCode, 127)


def test_every_quantized_tensor_has_scale_and_zero_point(tmp_path):
    q, conv = _convert_single("add", "qnnpack", tmp_path)
    for t in read_circle(conv.circle).subgraphs[0].tensors:
        if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale):
            assert len(t.quantization.zeroPoint) == len(t.quantization.scale)


def test_standalone_relu_is_fused_into_its_producer(tmp_path):
    q, conv = _convert_single("relu", "x86", tmp_path)
    kinds = [op.kind for op in conv.graph.ops]
    assert "RELU" not in kinds
    (c,) = [op for op in conv.graph.ops if op.kind == "CONV_2D"]
    assert c.attrs["fusedActivationFunction"] == 1


def test_padding_that_is_not_same_becomes_pad_with_the_zero_point(tmp_path):
    q, conv = _convert_single("conv_s2_p1", "x86", tmp_path)
    kinds = [op.kind for op in conv.graph.ops]
    assert "PAD" in kinds
    c = [op for op in conv.graph.ops if op.kind == "CONV_2D"][0]
    assert c.attrs["padding"] == 1  # VALID after the explicit PAD


def test_dead_channel_gets_a_scale_its_bias_fits_under_and_stays_exact():
    """A channel whose weight codes are all zero point has real weights 0 at any scale: raising
    its tiny observer scale so the int32 bias fits is exact; a live channel is left alone."""
    from onelib.pytorch_quant.ops.quant import fit_bias_of_dead_channels
    ints = np.array([[3, -2], [0, 0]], np.int8)
    w = Tensor("w", ints.shape, "int8", QParams(np.array([0.01, 1.19e-7], np.float32), [0, 0], 0), ints)
    b = Tensor("b", (2,), "float32", None, np.array([0.5, 40.0], np.float32))
    in_q = QParams(np.float32(0.02), 0)
    with pytest.raises(Exception, match="does not fit int32"):
        quantize_bias(b, in_q, w.qparams, "uint8", 2, "b")           # 40 / (0.02 * 1.19e-7) > 2^31
    w2 = fit_bias_of_dead_channels(w, b, in_q, "uint8")
    assert w2.qparams.scale[0] == w.qparams.scale[0]                 # the live channel keeps its scale
    qb = quantize_bias(b, in_q, w2.qparams, "uint8", 2, "b")
    real = qb.data.astype(np.float64) * qb.qparams.scale.astype(np.float64)
    assert abs(real[1] - 40.0) < 1e-3 and abs(real[0] - 0.5) < 1e-4
    assert np.array_equal(w2.data, w.data)                           # same codes: real weights still 0


def test_write_atomic_gives_normal_mode_and_leaves_nothing_on_refusal(tmp_path):
    import os
    from onelib.pytorch_quant.fileutil import write_atomic
    out = str(tmp_path / "m.circle")
    write_atomic(out, b"first")
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~mask     # not mkstemp's 0600

    def refuse(tmp):
        assert open(tmp, "rb").read() == b"second"
        raise ValueError("check failed")
    with pytest.raises(ValueError):
        write_atomic(out, b"second", check=refuse)
    assert open(out, "rb").read() == b"first"
    assert sorted(os.listdir(str(tmp_path))) == ["m.circle"]
