"""The circle side of the fidelity report: cut the converted graph at every tensor PyTorch also
computes, run the cuts (per op, fed PyTorch's integers; accumulated, fed the model input) on onert,
TICO or luci-interpreter, and measure each difference in LSB; then the final output once more from
the converted bytes themselves."""
import time

from .common import _ACT, _FidelityError, _INT_RANGE, _first_line
from .probe import _torch_op_name


def _nhwc(a):
    return a.transpose(0, 2, 3, 1)


def _as_circle(value, src, ct, nhwc):
    """A PyTorch value of source tensor ``src`` in circle tensor ``ct``'s layout and dtype."""
    import numpy as np
    arr = value.array
    if nhwc and arr.ndim == 4:
        arr = _nhwc(arr)
    if tuple(arr.shape) != tuple(ct.shape):
        raise _FidelityError("%s: PyTorch's value is %s, the circle tensor %s"
                             % (ct.name, "x".join(map(str, arr.shape)), "x".join(map(str, ct.shape))))
    if ct.qparams is not None and ct.dtype in _INT_RANGE:
        scale, zp = float(ct.qparams.scale[0]), int(ct.qparams.zero_point[0])
        if value.quantized and np.float32(value.scale) == np.float32(scale):
            codes = arr - value.zero_point + zp          # same grid: exact (covers the int8 -> uint8 shift)
        else:
            real = (arr.astype(np.float64) - value.zero_point) * value.scale if value.quantized else arr
            codes = np.rint(real / scale) + zp
        lo, hi = _INT_RANGE[ct.dtype]
        return np.ascontiguousarray(np.clip(codes, lo, hi).astype(ct.dtype))
    if value.quantized:
        arr = (arr.astype(np.float64) - value.zero_point) * value.scale
    return np.ascontiguousarray(arr.astype(ct.dtype))


def _real(arr, ct):
    import numpy as np
    if ct.qparams is not None and ct.dtype in _INT_RANGE:
        return (arr.astype(np.float64) - int(ct.qparams.zero_point[0])) * float(ct.qparams.scale[0])
    return arr.astype(np.float64)


def _stats(got_real, want_real, scale):
    """max / mean |difference| in steps of ``scale`` and the share of exact elements."""
    import numpy as np
    diff = np.abs(got_real - want_real)
    out = {"max_abs": float(diff.max()) if diff.size else 0.0, "range_share": None}
    span = float(np.max(want_real) - np.min(want_real)) if want_real.size else 0.0
    if span > 0 and np.isfinite(span):
        out["range_share"] = out["max_abs"] / span
    if not np.all(np.isfinite(diff)):
        out.update(max_lsb=None, mean_lsb=None, exact_share=None, error="non-finite values")
        return out
    if scale:
        d = np.rint(diff / scale).astype(np.int64)
        out.update(max_lsb=int(d.max()) if d.size else 0, mean_lsb=float(d.mean()) if d.size else 0.0,
                   exact_share=float(np.count_nonzero(d == 0)) / d.size if d.size else 1.0)
    else:
        out.update(max_lsb=None, mean_lsb=None,
                   exact_share=float(np.count_nonzero(diff == 0)) / diff.size if diff.size else 1.0)
    return out


def _topk_agreement(want, got, k):
    """Share of circle's top-k (per batch row) where PyTorch's value is among PyTorch's k largest."""
    import numpy as np
    w = want.reshape(want.shape[0], -1) if want.ndim > 1 else want.reshape(1, -1)
    g = got.reshape(w.shape)
    kk = min(k, w.shape[1])
    if kk == 0:
        return None
    shares = []
    for wr, gr in zip(w, g):
        top_g = np.argsort(-gr, kind="stable")[:kk]
        threshold = np.sort(wr)[-kk]
        shares.append(float(np.count_nonzero(wr[top_g] >= threshold)) / kk)
    return float(np.mean(shares))


def _grid_scale(ct, producer):
    """The LSB a tensor is measured in: its own scale, or for a DEQUANTIZE output its input's."""
    if ct.qparams is not None:
        return float(ct.qparams.scale[0])
    if producer is not None and producer.kind == "DEQUANTIZE" and producer.inputs[0].qparams is not None:
        return float(producer.inputs[0].qparams.scale[0])
    return None


def _op_label(op):
    act = _ACT.get(op.attrs.get("fusedActivationFunction", 0))
    return op.kind + ("/" + act if act else "")


def _circle_bytes(graph):
    from ..circle.writer import write_circle
    return write_circle(graph)   # the writer leaves the graph as it is


class _Job(object):
    """One circle model to run: a graph (or the converted bytes), its inputs, where to run it."""

    def __init__(self, graph, feeds, runtime, note=None, data=None):
        self.graph = graph
        self.feeds = feeds
        self.runtime = runtime
        self.note = note
        self.data = data
        self.outputs = None
        self.error = None


def _choose_runtime(requested, graph):
    from .. import runtimes
    if requested != "auto":
        return requested, None
    why = runtimes.onert_unreliable(graph)
    return ("tico", "ran on TICO, not onert: " + why) if why else ("onert", None)


def _execute(jobs, requested, say):
    """Run every job; in auto mode a job onert refuses is rerun on TICO (and says so)."""
    from .. import runtimes
    onert_jobs = [j for j in jobs if j.runtime == "onert"]
    if onert_jobs:
        say("onert: %d model(s) in a child process" % len(onert_jobs))
        res = runtimes.run_onert_many([(j.data if j.data is not None else _circle_bytes(j.graph), j.feeds)
                                       for j in onert_jobs])
        for j, r in zip(onert_jobs, res):
            if isinstance(r, runtimes.RuntimeFailure):
                if requested == "auto":
                    j.runtime, j.note = "tico", "ran on TICO, not onert: %s" % _first_line(str(r))
                else:
                    j.error = _first_line(str(r))
            else:
                j.outputs = r
    for j in jobs:
        if j.runtime == "luci-interpreter" and j.outputs is None and j.error is None:
            try:
                j.outputs = runtimes.run_luci_interpreter(
                    j.data if j.data is not None else _circle_bytes(j.graph), j.feeds)
            except runtimes.RuntimeFailure as e:
                j.error = _first_line(str(e))
    for j in jobs:
        if j.runtime == "tico" and j.outputs is None and j.error is None:
            try:
                j.outputs = runtimes.run_tico(j.data if j.data is not None else _circle_bytes(j.graph), j.feeds)
            except runtimes.RuntimeFailure as e:
                j.error = _first_line(str(e))



def _compare(conv, values, torch_outs, opts, runtime, say, timings, labels=None):
    from .. import ir
    sgraph, cgraph = conv.source_graph, conv.graph
    nhwc_io = opts.io_layout == "nhwc"
    notes = []

    # circle tensor -> the source tensor whose PyTorch value it holds
    src_of = {}
    for s in sgraph.tensors():
        ct = conv.tensor_map.get(id(s))
        if ct is not None and id(s) in values:
            src_of[id(ct)] = s
    feeds = {}   # id(circle tensor) -> array in circle layout and dtype

    def feed(ct, nhwc=True):
        if id(ct) not in feeds:
            s = src_of[id(ct)]
            feeds[id(ct)] = _as_circle(values[id(s)], s, ct, nhwc and len(s.shape) == 4)
        return feeds[id(ct)]

    inputs = []
    for s, ct in zip(sgraph.inputs, cgraph.inputs):
        src_of[id(ct)] = s
        inputs.append(feed(ct, nhwc=nhwc_io))
    boundary = set(src_of)
    prod = cgraph.producers()
    sinputs = set(id(s) for s in sgraph.inputs)

    # rows: circle tensors produced by an op and computed by PyTorch too, in graph order
    rows = []
    for op in cgraph.ops:
        for t in op.outputs:
            s = src_of.get(id(t))
            if s is not None and id(s) not in sinputs:
                rows.append((t, s, op))

    layers = []
    per_jobs, acc_jobs = [], []
    for i, (t, s, op) in enumerate(rows):
        row = {"index": i, "name": t.name, "pytorch_op": _torch_op_name(conv.source_record, s, labels) or s.name,
               "circle_ops": "", "shape": list(t.shape), "dtype": t.dtype,
               "scale": _grid_scale(t, op),
               "zero_point": int(t.qparams.zero_point[0]) if t.qparams is not None else None,
               "per_op": {}, "accumulated": {}}
        layers.append(row)
        try:
            seg_in, seg_ops = _segment(cgraph, t, prod, boundary)
            row["circle_ops"] = "+".join(_op_label(o) for o in seg_ops)
            g = ir.Graph(inputs=seg_in, outputs=[t], ops=seg_ops)
            rt, note = _choose_runtime(runtime, g)
            per_jobs.append((i, _Job(g, [feed(c) for c in seg_in], rt, note)))
        except _FidelityError as e:
            row["circle_ops"] = _op_label(op)
            row["per_op"] = {"error": str(e)}
        g = ir.Graph(inputs=cgraph.inputs, outputs=[t], ops=cgraph.ops)
        g.prune()
        rt, note = _choose_runtime(runtime, g)
        acc_jobs.append((i, _Job(g, inputs, rt, note)))

    t0 = time.time()
    _execute([j for _, j in per_jobs], runtime, say)
    timings["per_op"] = time.time() - t0
    for i, j in per_jobs:
        layers[i]["per_op"] = _job_stats(j, 0, rows[i], values)

    # accumulated: onert runs one graph cut per tensor; TICO reads all of its tensors in one run
    t0 = time.time()
    onert_acc = [(i, j) for i, j in acc_jobs if j.runtime in ("onert", "luci-interpreter")]
    _execute([j for _, j in onert_acc], runtime, say)
    tico_acc = [(i, j) for i, j in acc_jobs if j.runtime == "tico"]
    if tico_acc:
        outs = [rows[i][0] for i, _ in tico_acc]
        g = ir.Graph(inputs=cgraph.inputs, outputs=outs, ops=cgraph.ops)
        g.prune()
        multi = _Job(g, inputs, "tico")
        _execute([multi], "tico", say)
        for k, (i, j) in enumerate(tico_acc):
            j.outputs = [multi.outputs[k]] if multi.outputs is not None else None
            j.error = j.error or multi.error
    timings["accumulated"] = time.time() - t0
    for i, j in acc_jobs:
        layers[i]["accumulated"] = _job_stats(j, 0, rows[i], values)

    # the final output, from the converted bytes themselves
    t0 = time.time()
    rt, note = _choose_runtime(runtime, cgraph)
    job = _Job(cgraph, inputs, rt, note, data=conv.circle)
    _execute([job], runtime, say)
    timings["final"] = time.time() - t0
    final = _final_stats(conv, job, values, torch_outs, nhwc_io)
    if len(sgraph.outputs) > 1:
        notes.append("the model has %d outputs; 'final' describes the first" % len(sgraph.outputs))
    for j in [j for _, j in per_jobs] + [j for _, j in acc_jobs] + [job]:
        if j.note and j.note not in notes:
            notes.append(j.note)
    return layers, final, notes


def _segment(cgraph, t, prod, boundary):
    """The circle ops between tensor ``t`` and the nearest tensors PyTorch also computes."""
    ops, inputs, seen_in, seen_op = [], [], set(), set()
    stack = [prod[id(t)]]
    while stack:
        op = stack.pop()
        if id(op) in seen_op:
            continue
        seen_op.add(id(op))
        ops.append(op)
        for i in op.inputs:
            if i is None or i.is_const:
                continue
            if id(i) in boundary:
                if id(i) not in seen_in:
                    seen_in.add(id(i))
                    inputs.append(i)
                continue
            p = prod.get(id(i))
            if p is None:
                raise _FidelityError("%s reads %s, which PyTorch does not compute" % (t.name, i.name))
            stack.append(p)
    order = {id(o): k for k, o in enumerate(cgraph.ops)}
    ops.sort(key=lambda o: order[id(o)])
    return inputs, ops


def _job_stats(job, k, row, values):
    t, s, op = row
    out = {"max_lsb": None, "mean_lsb": None, "exact_share": None, "max_abs": None, "range_share": None,
           "runtime": job.runtime, "note": job.note, "error": job.error}
    if job.error or job.outputs is None:
        out["error"] = out["error"] or "no output"
        return out
    try:
        got = job.outputs[k]
        if tuple(got.shape) != tuple(t.shape):
            raise _FidelityError("output is %s, expected %s" % (got.shape, t.shape))
        v = values[id(s)]
        want_real = v.real()
        if len(s.shape) == 4:      # every 4-D tensor inside the circle graph is NHWC
            want_real = _nhwc(want_real)
        out.update(_stats(_real(got, t), want_real, _grid_scale(t, op)))
    except _FidelityError as e:
        out["error"] = str(e)
    return out


def _final_stats(conv, job, values, torch_outs, nhwc_io):
    sgraph, cgraph = conv.source_graph, conv.graph
    s, ct = sgraph.outputs[0], cgraph.outputs[0]
    v = values.get(id(s))
    if v is None:
        v = torch_outs[0]
    sprod = sgraph.producers().get(id(s))
    scale = None
    if ct.qparams is not None:
        scale = float(ct.qparams.scale[0])
    elif s.qparams is not None:
        scale = float(s.qparams.scale[0])
    elif sprod is not None and sprod.kind == "dequantize" and sprod.inputs[0].qparams is not None:
        scale = float(sprod.inputs[0].qparams.scale[0])
    out = {"name": s.name, "shape": list(s.shape), "scale": scale, "max_lsb": None, "mean_lsb": None,
           "exact_share": None, "max_abs": None, "range_share": None, "top1": None, "top5": None,
           "runtime": job.runtime, "note": job.note, "error": job.error}
    if job.error or job.outputs is None:
        out["error"] = out["error"] or "no output"
        return out
    got = _real(job.outputs[0], ct)
    if nhwc_io and got.ndim == 4:
        got = got.transpose(0, 3, 1, 2)
    want = v.real()
    if got.shape != want.shape:
        out["error"] = "output is %s, PyTorch's %s" % (got.shape, want.shape)
        return out
    out.update(_stats(got, want, scale))
    out["top1"] = _topk_agreement(want, got, 1)
    out["top5"] = _topk_agreement(want, got, 5)
    return out

