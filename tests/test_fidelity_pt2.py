"""The layer-by-layer fidelity report on PT2E ``.pt2`` programs (onelib/pytorch_quant/report.py).

PyTorch's side is the exported program itself, run node by node; each source tensor knows the
graph node it stands for (``SourceRecord.nodes``, from the .pt2 frontend): a quantized tensor is
its ``quantize_per_tensor`` node's int8 codes, which feed circle's uint8 tensors shifted by +128.
Per op (fed PyTorch's own integers) every circle op of the XNNPACK per-channel blocks is within
1 LSB, on onert (``fc_as_conv``) and on TICO; the final numbers equal an independent end-to-end
run of an independent conversion against the program's own output. An X86-quantizer program
(partly float) gets its float layers compared in float: max |difference| in real units and its
share of the range of PyTorch's tensor.
"""
import json
import os

import numpy as np
import pytest

import pt2models as M
from oracles import lsb_stats, run_onert, run_tico
from oracles import topk_share as _topk
from onelib.pytorch_quant import api, report

pytestmark = [pytest.mark.filterwarnings("ignore:.*deprecated:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*deprecated:FutureWarning")]

PER_OP_LSB = 1
BLOCKS = ["inverted_residual", "basic_block"]
_BUILT = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fidelity_pt2"))


def built(workdir, name, recipe="xnnpack"):
    """(Quantized, .pt2 path, inputs on the input grid, the program's own outputs), made once."""
    return M.built_once(_BUILT, workdir, name, recipe)


def _check_final(rep, y, ref, scale):
    """The report's final numbers equal those of an independent end-to-end run."""
    f = rep.final
    assert f["error"] is None, f
    assert f["scale"] == pytest.approx(scale, rel=1e-6)
    indep = lsb_stats(y, ref, scale)
    assert f["max_lsb"] == indep["max"], (f, indep)
    assert f["exact_share"] == pytest.approx(indep["exact_share"], abs=1e-12)
    assert f["mean_lsb"] == pytest.approx(indep["mean"], abs=1e-12)
    assert f["max_abs"] == pytest.approx(float(np.abs(y.astype(np.float64) - ref).max()), rel=1e-9, abs=1e-12)
    assert f["top1"] == pytest.approx(_topk(ref, y, 1))
    assert f["top5"] == pytest.approx(_topk(ref, y, 5))


def _check_rows(rep, runtime):
    assert rep.engine == report.PT2_ENGINE
    assert rep.layers, "no layer compared"
    for row in rep.layers:
        per, acc = row["per_op"], row["accumulated"]
        assert per["error"] is None and per["runtime"] == runtime, row
        assert per["max_lsb"] <= PER_OP_LSB, rep.table()
        assert acc["error"] is None and acc["runtime"] == runtime, row
        assert row["dtype"] == "uint8" or row["circle_ops"] == "DEQUANTIZE", row
        assert row["pytorch_op"].startswith(("q(", "dq(")), row   # the quantize node's integers
    assert rep.first_over_1lsb is None


@pytest.mark.parametrize("name", BLOCKS)
def test_per_op_within_1_lsb_on_onert(name, workdir, tmp_path):
    q, path, x, ref = built(workdir, name)
    rep = report.fidelity(path, api.ConvertOptions(fc_as_conv=True), x=x, runtime="onert")
    _check_rows(rep, "onert")
    # the final output against an independent onert run of an independent conversion
    cpath = str(tmp_path / "m.circle")
    api.convert(path, api.ConvertOptions(fc_as_conv=True)).save(cpath)
    assert rep.final["runtime"] == "onert"
    _check_final(rep, run_onert(cpath, x)[0], ref[0], q.output_scale()[0])
    # the accumulated error of the tensor feeding DEQUANTIZE is the end-to-end error
    last_q = [r for r in rep.layers if r["circle_ops"] != "DEQUANTIZE"][-1]
    assert last_q["accumulated"]["max_lsb"] == rep.final["max_lsb"]


@pytest.mark.parametrize("name", BLOCKS)
def test_per_op_within_1_lsb_on_tico(name, workdir):
    q, path, x, ref = built(workdir, name)
    rep = report.fidelity(path, api.ConvertOptions(), x=x, runtime="tico")
    _check_rows(rep, "tico")
    assert rep.final["runtime"] == "tico"
    _check_final(rep, run_tico(api.convert(path).circle, x)[0], ref[0], q.output_scale()[0])


def test_int8_codes_feed_uint8_tensors_shifted_by_128(workdir):
    """The probe's values are the program's own: quantize nodes give int8 codes with PyTorch's
    zero point, the model output is the dequantize node's float output (bit for bit); each code
    reaches its circle uint8 tensor as code + 128 (zero point + 128, same scale)."""
    q, path, x, ref = built(workdir, "inverted_residual")
    conv = api.convert(path)
    sg, nodes = conv.source_graph, conv.source_record.nodes
    assert all(id(t) in nodes for op in sg.ops for t in op.outputs), "a tensor without its node"
    probe = report._probe_for(sg, conv.source_record)
    outs, values = probe.run(x)
    np.testing.assert_array_equal(outs[0].array, ref[0])
    out = values[id(sg.outputs[0])]
    assert not out.quantized and out.array.dtype == np.float32
    np.testing.assert_array_equal(out.array, ref[0])
    checked = 0
    for s in sg.tensors():
        v, ct = values.get(id(s)), conv.tensor_map.get(id(s))
        if v is None or ct is None or not v.quantized:
            continue
        assert nodes[id(s)].startswith("quantize_per_tensor"), nodes[id(s)]
        assert -128 <= v.array.min() and v.array.max() <= 127, s.name
        assert ct.dtype == "uint8" and np.float32(v.scale) == ct.qparams.scale[0]
        assert int(ct.qparams.zero_point[0]) == v.zero_point + 128, s.name
        codes = v.array.transpose(0, 2, 3, 1) if v.array.ndim == 4 else v.array
        fed = report._as_circle(v, s, ct, v.array.ndim == 4)
        np.testing.assert_array_equal(fed, (codes + 128).astype(np.uint8), err_msg=s.name)
        checked += 1
    assert checked >= 5


def test_x86_float_layers_compared_in_float(workdir, tmp_path):
    """X86InductorQuantizer leaves the project conv and the add float: those rows have no scale
    and no LSB numbers, only max |difference| (real units) and its share of PyTorch's range; a
    float op fed PyTorch's own float inputs differs by float rounding only. The quantized rows
    stay within 1 LSB per op; the float final output equals an independent run's."""
    q, path, x, ref = built(workdir, "inverted_residual", "x86")
    rep = report.fidelity(path, api.ConvertOptions(fc_as_conv=True), x=x, runtime="auto")
    floats = [r for r in rep.layers if r["scale"] is None]
    assert {r["circle_ops"] for r in floats} >= {"CONV_2D", "ADD"}, rep.table()
    for r in rep.layers:
        per, acc = r["per_op"], r["accumulated"]
        assert per["error"] is None and acc["error"] is None, r
        if r["scale"] is None:
            assert r["dtype"] == "float32" and not r["pytorch_op"].startswith("q("), r
            assert per["max_lsb"] is None and per["mean_lsb"] is None and acc["max_lsb"] is None, r
            assert per["range_share"] < 1e-6, rep.table()         # float rounding only
            assert acc["range_share"] < 0.01, rep.table()         # 1-LSB steps upstream
        else:
            assert per["max_lsb"] <= PER_OP_LSB, rep.table()
    text = rep.table()
    assert "float layers" in text and "of the range" in text, text
    f = rep.final
    assert f["scale"] is None and f["max_lsb"] is None and f["error"] is None, f
    cpath = str(tmp_path / "x86.circle")
    api.convert(path, api.ConvertOptions(fc_as_conv=True)).save(cpath)
    y = run_onert(cpath, x)[0].astype(np.float64)
    want = ref[0].astype(np.float64)
    assert f["max_abs"] == pytest.approx(float(np.abs(y - want).max()), rel=1e-9)
    assert f["range_share"] == pytest.approx(f["max_abs"] / float(want.max() - want.min()), rel=1e-9)
    assert f["top1"] == pytest.approx(_topk(want, y, 1))


def test_exported_program_object_equals_file(workdir):
    q, path, x, ref = built(workdir, "basic_block")
    a = report.fidelity(path, x=x, runtime="tico").to_dict()
    b = report.fidelity(q.ep, x=x, runtime="tico").to_dict()
    assert b["model"] == "ExportedProgram"
    for key in ("layers", "final"):
        assert json.dumps(a[key], sort_keys=True) == json.dumps(b[key], sort_keys=True)


def test_cli_on_pt2(workdir, tmp_path, capsys):
    """The CLI takes a .pt2 with no shapes; JSON keys as documented; the float rows of a partly
    float program appear in the table, the JSON and the plot."""
    q, path, x, ref = built(workdir, "inverted_residual", "x86")
    xp, jp, pp = (str(tmp_path / n) for n in ("x.npy", "r.json", "r.png"))
    np.save(xp, x[0])
    rc = report.main([path, "--input", xp, "--runtime", "tico", "--engine", "x86", "--json", jp, "--plot", pp])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, out
    for word in ("exported program", "q(x)", "conv.6", "float layers", "final output", "does not apply"):
        assert word in out, out
    print(out)   # pytest -s shows the table
    with open(jp) as f:
        doc = json.load(f)
    assert tuple(doc) == report.REPORT_KEYS and tuple(doc["final"]) == report.FINAL_KEYS
    for r in doc["layers"]:
        assert tuple(r) == report.LAYER_KEYS
        assert tuple(r["per_op"]) == report.STATS_KEYS and tuple(r["accumulated"]) == report.STATS_KEYS
    assert any(r["scale"] is None and r["per_op"]["range_share"] is not None for r in doc["layers"])
    if os.path.exists(pp):   # the chart needs matplotlib (optional; test_report_unit.py covers both)
        with open(pp, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    else:
        assert report.CHART_SKIPPED in captured.err
