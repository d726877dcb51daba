"""circle/vocab.py is right about circle (codes, option tables and fields against the
circle_schema package), ``LowerCtx.emit`` refuses a misspelt op or option when called, and the
writer leaves the graph's names alone while writing unique ones. Torch-free."""
import numpy as np
import pytest

from onelib.pytorch_quant.circle import vocab, writer
from onelib.pytorch_quant.errors import ConversionError
from onelib.pytorch_quant.ir import Graph, Op, QParams, Tensor
from onelib.pytorch_quant.ops.ctx import LowerCtx


def test_vocab_matches_the_circle_schema():
    C = pytest.importorskip("circle_schema.v0_10.circle")
    from circle_schema.v0_10.circle.ActivationFunctionType import ActivationFunctionType as AF
    from circle_schema.v0_10.circle.BuiltinOperator import BuiltinOperator
    from circle_schema.v0_10.circle.Padding import Padding
    for kind, (code, table, fields) in vocab.OPS.items():
        assert getattr(BuiltinOperator, kind) == code, kind
        if table is None:
            assert fields == (), kind
            continue
        opt = getattr(getattr(C, table), table + "T")()
        assert set(fields) == set(vars(opt)), (kind, table)
    assert vocab.ACT == {None: AF.NONE, "relu": AF.RELU, "relu_n1_to_1": AF.RELU_N1_TO_1, "relu6": AF.RELU6}
    assert (vocab.SAME, vocab.VALID) == (Padding.SAME, Padding.VALID)
    from circle_schema.v0_10.circle.TensorType import TensorType
    for dtype, code in vocab.TENSOR_TYPE.items():
        assert getattr(TensorType, writer._TTYPE[dtype]) == code, dtype
    assert set(vocab.ACT_OF_OP) == set(vocab.ACT_RANGE) and set(vocab.ACT_OF_OP) <= set(vocab.OPS)


def test_integer_ranges_are_the_dtypes():
    for dtype, (lo, hi) in vocab.INT_RANGE.items():
        info = np.iinfo(dtype)
        assert (lo, hi) == (info.min, info.max), dtype


def _ctx():
    return LowerCtx(Graph(source="t"), options=None)


def _t(name, shape=(1, 4), dtype="float32", q=None):
    return Tensor(name, shape, dtype, q)


def test_emit_checks_op_and_option_names_when_called():
    ctx = _ctx()
    x, y = _t("x"), _t("y")
    op = ctx.emit("ADD", [x, x], [y], {"fusedActivationFunction": 0}, "ok")
    assert ctx.out.ops == [op]
    with pytest.raises(ConversionError, match="ADD .*no option fusedActivationFunktion"):
        ctx.emit("ADD", [x, x], [y], {"fusedActivationFunktion": 0}, "misspelt")
    with pytest.raises(ConversionError, match="CONV2D .*not a circle op"):
        ctx.emit("CONV2D", [x], [y], {}, "unknown")
    with pytest.raises(ConversionError, match="QUANTIZE .*no option axis .*no options table"):
        ctx.emit("QUANTIZE", [x], [y], {"axis": 0}, "tableless")
    assert ctx.out.ops == [op]   # nothing refused was appended


def test_unique_names():
    ts = [_t(n) for n in ("a", "a", "", "a:1", "a", "")]
    assert writer.unique_names(ts) == ["a", "a:1", "tensor", "a:1:1", "a:2", "tensor:1"]


def test_writer_leaves_the_graph_names_and_writes_unique_ones():
    pytest.importorskip("circle_schema.v0_10.circle")
    from circle_schema.v0_10.circle.Model import Model
    q = QParams(np.float32(0.5), 3)
    g = Graph(source="t")
    x = _t("x", (1, 4), "uint8", q)
    c = Tensor("x", (1, 4), "uint8", q.copy(), np.arange(4, dtype=np.uint8).reshape(1, 4))
    y = _t("x", (1, 4), "uint8", q.copy())
    g.inputs, g.outputs = [x], [y]
    g.ops = [Op("ADD", [x, c], [y], {"fusedActivationFunction": 0}, "add")]
    data = writer.write_circle(g)
    assert [t.name for t in (x, c, y)] == ["x", "x", "x"]
    sg = Model.GetRootAsModel(data, 0).Subgraphs(0)
    assert [sg.Tensors(i).Name().decode() for i in range(sg.TensorsLength())] == ["x", "x:1", "x:2"]
    assert writer.write_circle(g) == data


def test_writer_refuses_an_op_outside_the_vocabulary():
    pytest.importorskip("circle_schema.v0_10.circle")
    g = Graph(source="t")
    x, y = _t("x"), _t("y")
    g.inputs, g.outputs = [x], [y]
    g.ops = [Op("NOT_AN_OP", [x], [y], {}, "bad")]
    with pytest.raises(ConversionError, match="no circle writer entry for NOT_AN_OP"):
        writer.write_circle(g)
