"""Generic reading: a frontend given a table entry {PyTorch name: (IR kind, argument names)} reads
such a node without a reader of its own (the way a new simple op needs no frontend edit). The
kinds here ("abs", "pow") have no lowering: only the frontend's output graph is checked."""
import os
import tempfile

import pytest

torch = pytest.importorskip("torch")
import torch.ao.quantization.fx._decomposed  # noqa: E402,F401  (registers torch.ops.quantized_decomposed)

from onelib.pytorch_quant.api import ConvertOptions  # noqa: E402
from onelib.pytorch_quant.frontend import FrontendServices, pt2, torchscript  # noqa: E402
from onelib.pytorch_quant.passes import qdq, shapes  # noqa: E402

TS_TABLE = {"aten::abs": ("abs", ("self",)), "aten::pow": ("pow", ("self", "exponent"))}
PT2_TABLE = {"aten.abs.default": ("abs", ("self",)), "aten.pow.Tensor_Scalar": ("pow", ("self", "exponent"))}


def _services(table):
    # "abs" and "pow" have no shape rule: shapes are not what is tested here
    return FrontendServices(lambda graph: None, shapes.derive_qparams, table)


class _FloatIsland(torch.nn.Module):
    """quantize -> dequantize -> abs -> pow(2) -> quantize -> dequantize (abs and pow in float)."""

    def forward(self, x):
        q = torch.quantize_per_tensor(x, 0.1, 128, torch.quint8)
        y = torch.pow(torch.abs(q.dequantize()), 2)
        return torch.quantize_per_tensor(y, 0.05, 0, torch.quint8).dequantize()


class _Decomposed(torch.nn.Module):
    """The same island as PT2E writes it (quantized_decomposed ops around float aten ops)."""

    def forward(self, x):
        qd = torch.ops.quantized_decomposed
        q = qd.quantize_per_tensor(x, 0.1, 3, -128, 127, torch.int8)
        y = torch.pow(torch.abs(qd.dequantize_per_tensor(q, 0.1, 3, -128, 127, torch.int8)), 2)
        q2 = qd.quantize_per_tensor(y, 0.05, -128, -128, 127, torch.int8)
        return qd.dequantize_per_tensor(q2, 0.05, -128, -128, 127, torch.int8)


def _kinds(graph):
    return [op.kind for op in graph.ops]


def _check_island(graph):
    dq, a, p, q = graph.ops[1:5]
    assert len(a.inputs) == 1 and a.inputs[0] is dq.outputs[0] and a.attrs == {}
    assert a.outputs[0].dtype == "float32" and a.outputs[0].qparams is None
    assert len(p.inputs) == 1 and p.inputs[0] is a.outputs[0] and p.attrs == {"exponent": 2}
    assert q.inputs[0] is p.outputs[0]
    assert p.outputs[0].dtype == "float32" and p.outputs[0].qparams is None


def test_torchscript_reads_a_generic_op_in_a_float_island():
    m = torch.jit.trace(_FloatIsland().eval(), torch.randn(1, 3, 4, 4))
    graph, _ = torchscript.from_script_module(m, ConvertOptions(input_shapes=[[1, 3, 4, 4]]), "<test>",
                                              _services(TS_TABLE))
    assert _kinds(graph) == ["quantize", "dequantize", "abs", "pow", "quantize", "dequantize"]
    _check_island(graph)


def test_torchscript_without_the_table_entry_lists_the_op_as_unsupported():
    from onelib.pytorch_quant.errors import UnsupportedOpsError
    m = torch.jit.trace(_FloatIsland().eval(), torch.randn(1, 3, 4, 4))
    with pytest.raises(UnsupportedOpsError, match="aten::abs"):
        torchscript.from_script_module(m, ConvertOptions(input_shapes=[[1, 3, 4, 4]]), "<test>",
                                       _services({"aten::pow": TS_TABLE["aten::pow"]}))


def test_pt2_reads_a_generic_op_in_a_float_region():
    ep = torch.export.export(_Decomposed(), (torch.randn(1, 3, 4, 4),))
    graph, record = pt2.load_exported_program(ep, ConvertOptions(), _services(PT2_TABLE))
    # as the program has it: abs reads the quantized input (its dequantized value)
    assert _kinds(graph) == ["quantize", "abs", "pow", "quantize"]
    assert graph.ops[1].inputs[0] is graph.ops[0].outputs[0] and graph.ops[1].outputs[0].qparams is None
    qdq.fold_qdq(graph, record)
    assert _kinds(graph) == ["quantize", "dequantize", "abs", "pow", "quantize", "dequantize"]
    _check_island(graph)
    q = graph.ops[-2].outputs[0]
    assert q.dtype == "int8" and q.qparams.zero_point[0] == -128


def test_pt2_without_the_table_entry_lists_the_op_as_unsupported():
    from onelib.pytorch_quant.errors import UnsupportedOpsError
    ep = torch.export.export(_Decomposed(), (torch.randn(1, 3, 4, 4),))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.pt2")
        torch.export.save(ep, path)
        with pytest.raises(UnsupportedOpsError, match="aten.abs.default"):
            pt2.load_pt2(path, ConvertOptions(), _services({}))


class _QuantizedAbs(torch.nn.Module):
    """abs between dequantize and quantize: PT2E's form of an op it quantized."""

    def forward(self, x):
        qd = torch.ops.quantized_decomposed
        q = qd.quantize_per_tensor(x, 0.1, 3, -128, 127, torch.int8)
        y = torch.abs(qd.dequantize_per_tensor(q, 0.1, 3, -128, 127, torch.int8))
        q2 = qd.quantize_per_tensor(y, 0.05, -128, -128, 127, torch.int8)
        return qd.dequantize_per_tensor(q2, 0.05, -128, -128, 127, torch.int8)


def test_pt2_generic_op_is_quantized_where_pytorch_quantizes_it():
    ep = torch.export.export(_QuantizedAbs(), (torch.randn(1, 3, 4, 4),))
    graph, record = pt2.load_exported_program(ep, ConvertOptions(), _services(PT2_TABLE))
    qdq.fold_qdq(graph, record)
    assert _kinds(graph) == ["quantize", "abs", "dequantize"]
    out = graph.ops[1].outputs[0]
    assert out.dtype == "int8" and float(out.qparams.scale[0]) == pytest.approx(0.05)
    assert int(out.qparams.zero_point[0]) == -128
