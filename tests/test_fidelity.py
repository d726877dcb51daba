"""The layer-by-layer fidelity report (onelib/pytorch_quant/report.py).

Per op, fed PyTorch's own integer inputs, every circle op of the four test networks is within
1 LSB of PyTorch, on onert (FC written as 1x1 CONV_2D, which onert computes exactly) and on
TICO's reference runtime (luci's form). The report's final-output numbers are checked against
an independent end-to-end run (tests/oracles.py and the eager model's own output), and its
JSON and PNG files against their documented form.
"""
import json
import os
import struct

import numpy as np
import pytest

import qmodels
from oracles import lsb_stats, run_onert, run_tico
from oracles import topk_share as _topk
from onelib.pytorch_quant import api, report

CASES = [(n, e) for n in sorted(qmodels.MODELS) for e in qmodels.ENGINES]
PER_OP_LSB = 1


def _qmax(engine):
    # x86/fbgemm calibrate activations to 0..127 (reduce_range): stay inside what was calibrated
    return 127 if engine in ("x86", "fbgemm") else 255


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(name, engine) -> (path, shape, x, reference); models are built once for the module."""
    cache = {}
    folder = tmp_path_factory.mktemp("fidelity")

    def get(name, engine):
        if (name, engine) not in cache:
            factory, shape = qmodels.MODELS[name]
            q = qmodels.quantize_eager(factory(), engine, shape)
            path = os.path.join(str(folder), "%s_%s.pt" % (name, engine))
            qmodels.trace_and_save(q, shape, path, engine=engine)
            x = qmodels.grid_input(q, shape, seed=7, qmax=_qmax(engine))
            cache[(name, engine)] = (path, shape, x, qmodels.reference(q, x, engine))
        return cache[(name, engine)]
    return get


def _options(shape, **kw):
    return api.ConvertOptions(input_shapes=[list(shape)], **kw)


def _check_final(rep, y, ref):
    """The report's final numbers equal those of an independent end-to-end run."""
    f = rep.final
    assert f["error"] is None, f
    assert f["scale"] == pytest.approx(ref.qparams.scale, rel=1e-6)
    indep = lsb_stats(y, ref.out, ref.qparams.scale)
    assert f["max_lsb"] == indep["max"], (f, indep)
    assert f["exact_share"] == pytest.approx(indep["exact_share"], abs=1e-12)
    assert f["mean_lsb"] == pytest.approx(indep["mean"], abs=1e-12)
    assert f["top1"] == pytest.approx(_topk(ref.out, y, 1))
    assert f["top5"] == pytest.approx(_topk(ref.out, y, 5))


@pytest.mark.parametrize("name,engine", CASES)
def test_per_op_within_1_lsb_on_onert(name, engine, built, tmp_path):
    path, shape, x, ref = built(name, engine)
    rep = report.fidelity(path, _options(shape, fc_as_conv=True), x=x, runtime="onert", engine=engine)
    assert rep.layers, "no layer compared"
    for row in rep.layers:
        per = row["per_op"]
        assert per["error"] is None and per["runtime"] == "onert", row
        assert per["max_lsb"] <= PER_OP_LSB, rep.table()
        assert row["accumulated"]["error"] is None and row["accumulated"]["runtime"] == "onert", row
    assert rep.first_over_1lsb is None
    # the final output against an independent onert run of an independent conversion
    conv = api.convert(path, _options(shape, fc_as_conv=True))
    cpath = os.path.join(str(tmp_path), "m.circle")
    with open(cpath, "wb") as f:
        f.write(conv.circle)
    assert rep.final["runtime"] == "onert"
    _check_final(rep, run_onert(cpath, [x])[0], ref)
    # the accumulated error of the tensor feeding DEQUANTIZE is the end-to-end error
    last_q = [r for r in rep.layers if r["circle_ops"] != "DEQUANTIZE"][-1]
    assert last_q["accumulated"]["max_lsb"] == rep.final["max_lsb"]


@pytest.mark.parametrize("name,engine", CASES)
def test_per_op_within_1_lsb_on_tico(name, engine, built):
    path, shape, x, ref = built(name, engine)
    rep = report.fidelity(path, _options(shape), x=x, runtime="tico", engine=engine)
    for row in rep.layers:
        assert row["per_op"]["error"] is None and row["per_op"]["runtime"] == "tico", row
        assert row["per_op"]["max_lsb"] <= PER_OP_LSB, rep.table()
        assert row["accumulated"]["error"] is None, row
    assert rep.first_over_1lsb is None
    assert rep.final["runtime"] == "tico"
    _check_final(rep, run_tico(api.convert(path, _options(shape)).circle, [x])[0], ref)


def test_auto_runs_onert_defects_on_tico(built):
    """Without --fc_as_conv the x86 classifier has per-channel uint8 FULLY_CONNECTED, which onert
    computes wrong without an error: auto mode runs those graphs on TICO and says so."""
    path, shape, x, ref = built("classifier", "x86")
    rep = report.fidelity(path, _options(shape), x=x, runtime="auto", engine="x86")
    by_name = {r["name"]: r for r in rep.layers}
    assert by_name["conv1"]["per_op"]["runtime"] == "onert"
    assert by_name["fc1"]["per_op"]["runtime"] == "tico"
    assert by_name["fc2"]["accumulated"]["runtime"] == "tico"
    assert rep.final["runtime"] == "tico"
    assert any("FULLY_CONNECTED" in n and "TICO" in n for n in rep.notes), rep.notes
    assert all(r["per_op"]["max_lsb"] <= PER_OP_LSB for r in rep.layers), rep.table()


def test_tico_extra_outputs_equal_graph_cuts(built):
    """TICO's accumulated numbers come from one run with extra outputs; they must equal what the
    graph cut at each tensor gives (onert gets extra outputs wrong, TICO must not)."""
    from onelib.pytorch_quant import ir
    path, shape, x, ref = built("inverted_residual", "qnnpack")
    conv = api.convert(path, _options(shape))
    g = conv.graph
    inter = [op.outputs[0] for op in g.ops if op.outputs[0].qparams is not None]
    many = run_tico(report._circle_bytes(ir.Graph(g.inputs, list(inter), g.ops)), [x])
    for t, y in zip(inter, many):
        cut = ir.Graph(g.inputs, [t], g.ops)
        cut.prune()
        np.testing.assert_array_equal(y, run_tico(report._circle_bytes(cut), [x])[0], err_msg=t.name)


def test_a_wrong_layer_is_named(built, monkeypatch):
    """The report can fail: a bias off by 8 output steps in ``dw`` (changed in the IR the layers
    are cut from) makes ``dw_act`` the first layer over 1 LSB; the layers before it stay within
    1 LSB per op and accumulated."""
    path, shape, x, ref = built("inverted_residual", "x86")
    real_convert = api.convert

    def broken_convert(source, options=None, progress=None):
        conv = real_convert(source, options, progress)
        bias = [t for t in conv.graph.tensors() if t.name == "dw.bias"][0]
        out = [t for t in conv.graph.tensors() if t.name == "dw_act"][0]
        step = np.rint(8 * out.qparams.scale[0] / bias.qparams.scale.astype(np.float64))
        bias.data = (bias.data + step).astype(bias.data.dtype)
        return conv

    monkeypatch.setattr(api, "convert", broken_convert)
    rep = report.fidelity(path, _options(shape), x=x, runtime="tico", engine="x86")
    assert rep.first_over_1lsb == "dw_act", rep.table()
    names = [r["name"] for r in rep.layers]
    for r in rep.layers[:names.index("dw_act")]:
        assert r["per_op"]["max_lsb"] <= PER_OP_LSB and r["accumulated"]["max_lsb"] <= PER_OP_LSB
    assert rep.to_dict()["first_over_1lsb"] == "dw_act"


def test_the_module_is_not_modified(built):
    """The probe adds outputs to a copy of the frozen graph, never to the module conversion uses."""
    import torch
    path, shape, x, ref = built("basic_block", "qnnpack")
    with qmodels.engine_ctx("qnnpack"):
        conv = api.convert(path, _options(shape))
        module = conv.source_record.module
        before = str(module.graph)
        probe = report._probe_for(conv.source_graph, conv.source_record)
        outs, values = probe.run([x])
        assert str(module.graph) == before
        with torch.no_grad():
            y = module(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(outs[0].array, y)
    np.testing.assert_array_equal(y, ref.out)
    assert len(values) == len([t for op in conv.source_graph.ops for t in op.outputs])


def test_default_input_is_on_the_input_grid(built):
    path, shape, x, ref = built("conv_relu_conv_conv", "x86")
    rep = report.fidelity(path, _options(shape), runtime="tico", engine="x86", seed=3)
    assert "0..127" in rep.input and "seed 3" in rep.input
    quant = rep.layers[0]
    # the input is quantized first; the layout TRANSPOSE then runs on its integers
    assert quant["circle_ops"] == "QUANTIZE+TRANSPOSE" and quant["per_op"]["max_lsb"] == 0


def test_cli_table_json_and_png(built, tmp_path, capsys):
    path, shape, x, ref = built("inverted_residual", "x86")
    xp, jp, pp = (str(tmp_path / n) for n in ("x.npy", "r.json", "r.png"))
    np.save(xp, x)
    rc = report.main([path, "--input_shapes", ",".join(map(str, shape)), "--input", xp, "--engine", "x86",
                      "--runtime", "auto", "--json", jp, "--plot", pp])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0
    for word in ("per-op", "accumulated", "expand_act", "CONV_2D/RELU6", "first layer over 1 LSB",
                 "final output"):
        assert word in out, out
    print(out)   # pytest -s shows the table

    with open(jp) as f:
        doc = json.load(f)
    assert tuple(doc) == report.REPORT_KEYS
    assert doc["layers"] and all(tuple(r) == report.LAYER_KEYS for r in doc["layers"])
    for r in doc["layers"]:
        assert tuple(r["per_op"]) == report.STATS_KEYS and tuple(r["accumulated"]) == report.STATS_KEYS
    assert tuple(doc["final"]) == report.FINAL_KEYS
    assert doc["final"]["top1"] == 1.0 and doc["final"]["max_lsb"] <= 3

    # the chart (matplotlib, optional): drawn, or skipped with one line saying so
    if not _have_matplotlib():
        assert not os.path.exists(pp) and report.CHART_SKIPPED in captured.err
        return
    with open(pp, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    w, h = struct.unpack(">II", png[16:24])
    assert w >= 200 and h >= 200 and len(png) > 1500


def _have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_onert_batch_survives_a_crash(built):
    """onert segfaults on a malformed file: that job fails with the reason, the others still run."""
    from onelib.pytorch_quant import runtimes
    path, shape, x, ref = built("conv_relu_conv_conv", "qnnpack")
    data = api.convert(path, _options(shape)).circle
    res = runtimes.run_onert_many([(data, [x]), (b"not a circle file", [x]), (data, [x.astype(np.float64)]),
                                   (data, [x])])
    assert isinstance(res[0], list) and isinstance(res[3], list)
    np.testing.assert_array_equal(res[0][0], res[3][0])
    assert isinstance(res[1], runtimes.RuntimeFailure) and "onert" in str(res[1])
    assert isinstance(res[2], runtimes.RuntimeFailure) and "float64" in str(res[2])


def test_cli_error_is_one_line(tmp_path, capsys):
    rc = report.main([str(tmp_path / "missing.pt"), "--input_shapes", "1,3,8,8"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "missing.pt" in err and "\n" not in err
