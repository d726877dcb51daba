#!/usr/bin/env python3
"""Fidelity of the transformer-era models (issue 10), as the Markdown table in the README.

    venv/bin/python scripts/transformer_fidelity.py [--models vit,bert] [--recipes xnnpack,fx] [-n 8]

For every model x recipe of tests/transformer_models.py (vit, swin, convnext, efficientnet, bert,
transformer_encoder, mobilevit, gpt; PT2E XNNPACK, PT2E X86Inductor, FX x86 where PyTorch can
trace the model, PT2E QAT for ``QAT_MODELS``): quantize in code (random seeded weights, no
downloads), convert, and compare with PyTorch. Inputs are random (images: standard normal snapped
to the input quantizer's grid; tokens: uniform ids, BERT's mask with 1-3 padded positions): these
models have random weights, so no real data set means anything to them. Columns:

* converts: ``ok``, or the first line of what the converter says (the grouped unsupported list);
* circle ops: op count of the luci-profile conversion; float ops: its ops that read or write
  float32 activations (QUANTIZE/DEQUANTIZE not counted), by kind;
* per-op LSB: the largest single-op difference of the quantized tensors, each op fed PyTorch's own
  inputs (``report.fidelity``), on onert (onert profile) / TICO (luci profile); ``f`` marks a float
  tensor over one step of its consumer's quantizer;
* e2e LSB: the largest difference at the model output over the N inputs, in steps of the output's
  grid (``unit``), per runtime; spread: PyTorch's own (below);
* top-1: the share of positions (image, or token for GPT's vocabulary) where the runtime's largest
  output is PyTorch's largest (tie-aware), per runtime.

PyTorch's own spread (what "within PyTorch's spread" means here): a PT2E program is float ops
between quantize and dequantize, so the float precision is PyTorch's implementation choice, not the
model's meaning. ``float64_run`` evaluates the same program with every float op in float64
(quantize/dequantize as they are, in float32): two equally valid evaluations of one quantized
model, whose difference is how far near-tie roundings drift through depth. For FX TorchScript the
spread is the same file run on PyTorch's other quantized engine (qnnpack vs x86), as in
tests/test_architectures.py. The output unit is the output's own scale when PyTorch quantized it
(the last dequantize), else (float outputs: X86's float linear head, GPT's log_softmax) one step of
a 256-level grid over the range of PyTorch's outputs on the N inputs.

luci-interpreter (onert profile, as tests/test_one_tools.py runs it) is measured when ONE_BIN_DIR
names ONE's bin folder.
"""
import argparse
import collections
import os
import sys
import tempfile
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
warnings.filterwarnings("ignore")

N_INPUTS = 8
INPUT_SEED = 100
# (model, recipe) PyTorch itself cannot produce (torch 2.13): not cases, listed in the table
PYTORCH_REFUSES = {
    ("swin", "fx"): "FX cannot trace the mask built by slice assignment in forward",
    ("bert", "fx"): "FX cannot trace position_ids[:, :input_ids.size(1)] (HF needs its own tracer)",
}
RUNTIME_PROFILES = (("onert", {"fc_as_conv": True}), ("tico", {}), ("luci-interpreter", {"profile": "onert"}))


def cases(models=None, recipes=None):
    """[(model, recipe)] in table order: every model x (xnnpack, x86, fx) + qat for QAT_MODELS."""
    import transformer_models as T
    out = []
    for name in models or list(T.MODELS):
        for recipe in recipes or ["xnnpack", "x86", "fx", "qat"]:
            if recipe == "qat" and name not in T.QAT_MODELS:
                continue
            out.append((name, recipe))
    return out


def runtimes_available():
    from onelib.pytorch_quant import runtimes
    names = ["onert", "tico"]
    if runtimes.luci_interpreter_path():
        names.append("luci-interpreter")
    return names


# ------------------------------------------------------------------------------ PyTorch side
def _quantize_consumer(ep_graph, placeholder):
    """(scale, zero point, qmin, qmax) of the quantize node reading a placeholder, or None."""
    for u in placeholder.users:
        if u.op == "call_function" and "quantize_per_tensor" in str(u.target) and "dequantize" not in str(u.target):
            return float(u.args[1]), int(u.args[2]), int(u.args[3]), int(u.args[4])
    return None


def make_inputs(built, n=N_INPUTS, seed=INPUT_SEED):
    """``n`` input tuples (numpy) for ``built``: the model's own input generator with other seeds;
    float inputs snapped to the input quantizer's grid (so QUANTIZE rounding cannot differ)."""
    import numpy as np
    import torch
    import transformer_models as T
    grids = []
    if built.kind == "pt2":
        phs = [p for p in built.artifact.graph.nodes if p.op == "placeholder"]
        user = [s.arg.name for s in built.artifact.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        byname = dict((p.name, p) for p in phs)
        grids = [_quantize_consumer(built.artifact.graph, byname[u]) for u in user]
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        xs = []
        for k, t in enumerate(T.MODELS[built.name][1](g)):
            a = t.numpy()
            q = grids[k] if k < len(grids) else None
            if q is not None and a.dtype == np.float32:
                s, zp, lo, hi = q
                a = ((np.clip(np.rint(a / np.float32(s)) + zp, lo, hi) - zp) * np.float32(s)).astype(np.float32)
            xs.append(np.ascontiguousarray(a))
        out.append(tuple(xs))
    return out


def torch_run(built, xs, engine=None):
    """PyTorch's first output for one input tuple (the program / the saved file), float64 array."""
    import numpy as np
    import torch
    with torch.no_grad():
        ts = [torch.from_numpy(a) for a in xs]
        if built.kind == "pt2":
            y = built.artifact.module()(*ts)
        else:
            import qmodels as Q
            with Q.engine_ctx(engine or "x86"), Q._quiet():
                y = torch.jit.load(built.path)(*ts)
    while isinstance(y, (tuple, list)):
        y = y[0]
    return y.detach().numpy().astype(np.float64)


def float64_run(ep, xs):
    """The exported program with every float op in float64; quantize/dequantize ops (the
    ``quantized_decomposed`` namespace) get float32 as they require. First output, float64."""
    import numpy as np
    import torch
    from torch.utils._pytree import tree_map

    def to(dtype, src):
        return lambda v: v.to(dtype) if isinstance(v, torch.Tensor) and v.dtype == src else v

    up, down = to(torch.float64, torch.float32), to(torch.float32, torch.float64)

    class F64(torch.fx.Interpreter):
        def call_function(self, target, args, kwargs):
            qdq = getattr(target, "namespace", None) == "quantized_decomposed"
            args, kwargs = tree_map(down if qdq else up, (args, kwargs))
            if not qdq and kwargs.get("dtype") is torch.float32:
                kwargs = dict(kwargs, dtype=torch.float64)
            return super(F64, self).call_function(target, args, kwargs)

    with torch.no_grad():
        y = F64(ep.module()).run(*[torch.from_numpy(a) for a in xs])
    while isinstance(y, (tuple, list)):
        y = y[0]
    return y.detach().numpy().astype(np.float64)


def pytorch_spread(built, xs, want):
    """PyTorch's other equally valid evaluation of ``xs`` (see the module doc), float64."""
    if built.kind == "pt2":
        return float64_run(built.artifact, xs)
    return torch_run(built, xs, engine="qnnpack")


def output_unit(built, wants):
    """The LSB the output is measured in: the scale of the dequantize producing it, else a
    256-level step over the range of PyTorch's outputs (see the module doc). (unit, how)."""
    import numpy as np
    if built.kind == "pt2":
        out_node = [n for n in built.artifact.graph.nodes if n.op == "output"][0]
        first = out_node.args[0]
        while isinstance(first, (tuple, list)):
            first = first[0]
        if first is not None and "dequantize_per_tensor" in str(getattr(first, "target", "")):
            return float(first.args[1]), "output scale"
    else:
        import torch
        import qmodels as Q
        with torch.no_grad(), Q.engine_ctx("x86"), Q._quiet():
            y = torch.jit.load(built.path)(*[torch.from_numpy(a) for a in _first(wants)[1]])
        while isinstance(y, (tuple, list)):
            y = y[0]
        if y.is_quantized:
            return float(y.q_scale()), "output scale"
    lo = min(float(np.min(w)) for w, _ in wants)
    hi = max(float(np.max(w)) for w, _ in wants)
    return (hi - lo) / 255.0 or 1.0, "range/255"


def _first(items):
    return items[0]


def top1_decided(want, got, unit, bound):
    """(agreeing, decided): positions where PyTorch's best class leads its second by more than
    ``bound`` output steps (a near tie within the end-to-end bound is not decided by it), and how
    many of those have got's argmax equal to PyTorch's."""
    import numpy as np
    w = want.reshape(-1, want.shape[-1])
    g = got.reshape(-1, want.shape[-1])
    top2 = np.sort(w, axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) / unit > bound
    same = np.argmax(g, axis=1) == np.argmax(w, axis=1)
    return int(np.count_nonzero(same & decided)), int(np.count_nonzero(decided))


def top1_share(want, got):
    """Tie-aware share of rows (last axis = classes) where got's argmax is one of want's maxima."""
    import numpy as np
    w = want.reshape(-1, want.shape[-1])
    g = got.reshape(-1, want.shape[-1])
    pick = np.argmax(g, axis=1)
    return float(np.mean(w[np.arange(len(w)), pick] >= w.max(axis=1)))


# ------------------------------------------------------------------------------ circle side
def options_for(built, runtime):
    from onelib.pytorch_quant import api
    kw = dict(dict(RUNTIME_PROFILES)[runtime])
    if built.kind == "torchscript":
        kw["input_shapes"] = [list(t.shape) for t in built.inputs]
    return api.ConvertOptions(**kw)


def convert(built, runtime):
    from onelib.pytorch_quant import api
    return api.convert(built.artifact, options_for(built, runtime))


def run_circle(conv, xs, runtime):
    """The converted model's first output for one input tuple, as float64 real values."""
    import numpy as np
    from onelib.pytorch_quant import runtimes
    feed = [np.ascontiguousarray(a.astype(t.dtype)) for a, t in zip(xs, conv.graph.inputs)]
    fn = {"onert": runtimes.run_onert, "tico": runtimes.run_tico,
          "luci-interpreter": runtimes.run_luci_interpreter}[runtime]
    y = fn(conv.circle, feed)[0]
    ct = conv.graph.outputs[0]
    if ct.qparams is not None and y.dtype.kind in "iu":
        return (y.astype(np.float64) - int(ct.qparams.zero_point[0])) * float(ct.qparams.scale[0])
    return y.astype(np.float64)


def float_ops(graph):
    """Counter of circle op kinds that read or write float32 activations (QUANTIZE and DEQUANTIZE
    excepted: they are the boundaries)."""
    c = collections.Counter()
    for op in graph.ops:
        if op.kind in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if any(t is not None and not t.is_const and t.dtype == "float32" for t in list(op.inputs) + list(op.outputs)):
            c[op.kind] += 1
    return c


def consumer_step(graph, name):
    """One step of the quantizer a float tensor reaches: the smallest scale of the QUANTIZE ops
    downstream through float ops; without one (a float output), the scale of the DEQUANTIZE
    inputs upstream. None when neither exists."""
    by_name = dict((t.name, t) for t in graph.tensors())
    t0 = by_name.get(name)
    if t0 is None:
        return None
    cons, prod = graph.consumers(), graph.producers()
    steps, stack, seen = [], [t0], set()
    while stack:
        t = stack.pop()
        for op in cons.get(id(t), []):
            if id(op) in seen:
                continue
            seen.add(id(op))
            for o in op.outputs:
                if o is None:
                    continue
                if o.qparams is not None and o.dtype != "float32":
                    steps.append(float(o.qparams.scale[0]))
                else:
                    stack.append(o)
    if steps:
        return min(steps)
    stack, seen = [t0], set()
    while stack:
        t = stack.pop()
        op = prod.get(id(t))
        if op is None or id(op) in seen:
            continue
        seen.add(id(op))
        for i in op.inputs:
            if i is None or i.is_const:
                continue
            if i.qparams is not None and i.dtype != "float32":
                steps.append(float(i.qparams.scale[0]))
            else:
                stack.append(i)
    return min(steps) if steps else None


def per_op(built, runtime, x):
    """``report.fidelity`` on one input, per op. Returns dict(worst quantized LSB, worst float
    tensor in consumer steps, rows over the bound, errors, table)."""
    from onelib.pytorch_quant import report
    opts = options_for(built, runtime)
    rep = report.fidelity(built.artifact if built.kind == "pt2" else built.path, opts, x=list(x),
                          runtime=runtime, engine="x86" if built.kind == "torchscript" else None)
    graph = convert(built, runtime).graph
    worst_q, worst_f, bad, errors = 0, 0.0, [], []
    for r in rep.layers:
        p = r["per_op"]
        if p.get("error"):
            errors.append("%s: %s" % (r["name"], p["error"]))
            continue
        if r["scale"] is not None:   # a quantized tensor, or the DEQUANTIZE of one: its own grid
            worst_q = max(worst_q, p["max_lsb"])
            if p["max_lsb"] > 1:
                bad.append("%s (%s) %d LSB" % (r["name"], r["circle_ops"], p["max_lsb"]))
        else:
            step = consumer_step(graph, r["name"]) or r["scale"]
            if step is None:
                errors.append("%s: float tensor with no quantizer near it" % r["name"])
                continue
            steps = p["max_abs"] / step
            worst_f = max(worst_f, steps)
            if steps > 1:
                bad.append("%s (%s) float, %.2f steps of %.4g" % (r["name"], r["circle_ops"], steps, step))
    return {"worst_q": worst_q, "worst_f": worst_f, "bad": bad, "errors": errors, "rows": len(rep.layers),
            "table": rep.table(), "final": rep.final}


# ------------------------------------------------------------------------------ one case
class Measured(object):
    """One model x recipe. ``status``: 'ok', 'pytorch' (PyTorch refuses), 'refused' (converter
    error: ``message``), 'crash'. Per runtime: ``e2e`` (max LSB), ``top1``, ``per_op`` (dict of
    ``per_op()``), ``run_error``. Shared: ``spread`` (LSB), ``spread_top1``, ``unit``."""

    def __init__(self, name, recipe):
        self.name, self.recipe = name, recipe
        self.status, self.message = None, ""
        self.n_ops, self.float_ops = None, collections.Counter()
        self.e2e, self.top1, self.per_op, self.run_error = {}, {}, {}, {}
        self.wants, self.outputs = [], {}     # PyTorch's outputs; per runtime the circle's
        self.spread = self.spread_top1 = self.unit = self.unit_how = None
        self.luci_errors = []


def measure(name, recipe, folder, n=N_INPUTS, runtimes=None, with_per_op=True, built=None):
    import numpy as np
    import transformer_models as T
    from onelib.pytorch_quant import verify
    from onelib.pytorch_quant.errors import ConversionError
    m = Measured(name, recipe)
    if (name, recipe) in PYTORCH_REFUSES:
        m.status, m.message = "pytorch", PYTORCH_REFUSES[(name, recipe)]
        return m
    try:
        built = built or T.build(name, recipe, folder)
    except Exception as e:  # noqa: BLE001  PyTorch refusing is the finding
        m.status, m.message = "pytorch", "%s: %s" % (type(e).__name__, (str(e).strip().splitlines() or [""])[0])
        return m
    m.built = built
    try:
        luci = convert(built, "tico")
    except ConversionError as e:
        m.status, m.message = "refused", str(e).strip().replace(folder + os.sep, "")
        return m
    except Exception as e:  # noqa: BLE001  a crash is a finding too
        m.status, m.message = "crash", "%s: %s" % (type(e).__name__, (str(e).strip().splitlines() or [""])[0])
        m.traceback = traceback.format_exc()
        return m
    m.status = "ok"
    m.n_ops = len(luci.graph.ops)
    m.float_ops = float_ops(luci.graph)
    m.luci_errors = [str(f) for f in verify.errors(verify.verify_circle(luci.circle, target="luci"))]
    inputs = make_inputs(built, n)
    wants = [(torch_run(built, xs), xs) for xs in inputs]
    m.unit, m.unit_how = output_unit(built, wants)
    others = [pytorch_spread(built, xs, w) for w, xs in wants]
    m.wants = [w for w, _ in wants]
    m.spread = max(int(np.rint(np.abs(o - w).max() / m.unit)) for o, (w, _) in zip(others, wants))
    m.spread_top1 = float(np.mean([top1_share(w, o) for o, (w, _) in zip(others, wants)]))
    for rt in runtimes or runtimes_available():
        try:
            conv = luci if rt == "tico" else convert(built, rt)
            gots = [run_circle(conv, xs, rt) for _, xs in wants]
        except Exception as e:  # noqa: BLE001  a runtime refusing the model is a finding
            m.run_error[rt] = "%s: %s" % (type(e).__name__, (str(e).strip().splitlines() or [""])[0])
            continue
        m.outputs[rt] = gots
        m.e2e[rt] = max(int(np.rint(np.abs(g - w).max() / m.unit)) for g, (w, _) in zip(gots, wants))
        m.top1[rt] = float(np.mean([top1_share(w, g) for g, (w, _) in zip(gots, wants)]))
        if with_per_op and rt in ("onert", "tico"):
            try:
                m.per_op[rt] = per_op(built, rt, inputs[0])
            except Exception as e:  # noqa: BLE001
                m.per_op[rt] = {"errors": ["%s: %s" % (type(e).__name__, (str(e).strip().splitlines() or [""])[0])],
                                "worst_q": None, "worst_f": None, "bad": [], "rows": 0}
    return m


# ------------------------------------------------------------------------------ the table
def _pct(v):
    return "-" if v is None else "%.0f%%" % (100.0 * v)


def _per_op_cell(p):
    if p is None:
        return "-"
    if p.get("worst_q") is None:
        return "error"
    cell = "%d" % p["worst_q"]
    if p["worst_f"]:
        cell += " f%.2f" % p["worst_f"]
    if p["errors"]:
        cell += " (%d unmeasured)" % len(p["errors"])
    return cell


def _converts_cell(m):
    if m.status == "ok":
        return "ok"
    first = m.message.splitlines()[0] if m.message else ""
    if m.status == "pytorch":
        return "PyTorch: " + first
    first = first.replace("|", "\\|")
    return ("crash: " if m.status == "crash" else "") + (first if len(first) < 160 else first[:157] + "...")


def markdown_table(results, runtimes):
    rts = " / ".join(runtimes)
    head = ["model", "recipe", "converts", "circle ops", "float ops (luci profile)",
            "per-op max LSB " + "onert / tico", "e2e max LSB " + rts, "PyTorch spread", "top-1 " + rts]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in results:
        if m.status != "ok":
            cells = [m.name, m.recipe, _converts_cell(m)] + ["-"] * (len(head) - 3)
        else:
            fo = ", ".join("%s %d" % (k, c) for k, c in sorted(m.float_ops.items())) or "none"
            cells = [m.name, m.recipe, "ok" + (" (%d luci errors)" % len(m.luci_errors) if m.luci_errors else ""),
                     str(m.n_ops), fo,
                     " / ".join(_per_op_cell(m.per_op.get(rt)) for rt in ("onert", "tico")),
                     " / ".join(str(m.e2e[rt]) if rt in m.e2e else "fails" for rt in runtimes),
                     "%d (%s)" % (m.spread, "float64" if m.recipe != "fx" else "qnnpack"),
                     " / ".join(_pct(m.top1.get(rt)) for rt in runtimes)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    import transformer_models as T
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(T.MODELS))
    ap.add_argument("--recipes", default="xnnpack,x86,fx,qat")
    ap.add_argument("-n", type=int, default=N_INPUTS, help="random inputs per case (default %d)" % N_INPUTS)
    ap.add_argument("--details", action="store_true", help="print each case's failures and per-op rows over the bound")
    args = ap.parse_args(argv)
    rts = runtimes_available()
    results, t0 = [], time.time()
    with tempfile.TemporaryDirectory(prefix="transformer_fidelity_") as folder:
        for name, recipe in cases(args.models.split(","), args.recipes.split(",")):
            t1 = time.time()
            m = measure(name, recipe, folder, n=args.n, runtimes=rts)
            results.append(m)
            sys.stderr.write("%-20s %-8s %-8s %.1f s\n" % (name, recipe, m.status, time.time() - t1))
            if args.details:
                if m.status != "ok":
                    sys.stderr.write("  " + m.message.replace("\n", "\n  ") + "\n")
                for rt, err in m.run_error.items():
                    sys.stderr.write("  %s: %s\n" % (rt, err))
                for rt, p in m.per_op.items():
                    for line in p["bad"] + p["errors"]:
                        sys.stderr.write("  per-op %s: %s\n" % (rt, line))
                for e in m.luci_errors:
                    sys.stderr.write("  luci: %s\n" % e)
    print(markdown_table(results, rts))
    sys.stderr.write("%d cases in %.1f s; N = %d random inputs each\n" % (len(results), time.time() - t0, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
