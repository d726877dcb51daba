"""Layer-by-layer fidelity: the converted circle model against PyTorch's own quantized run.

``fidelity(source)`` converts the model, runs it in PyTorch once while reading every
intermediate quantized tensor, and for every circle tensor that has a PyTorch counterpart
reports the difference in LSB (steps of that tensor's scale) two ways:

* **per-op**: the circle op(s) that compute the tensor, cut out as a small circle model and fed
  PyTorch's own integer inputs. This isolates each op: a correct lowering is within 1 LSB (PyTorch
  x86 requantizes in float, circle kernels with an integer multiplier).
* **accumulated**: the graph cut at the tensor (the prefix that computes it) fed the model input,
  so 1-LSB steps add up through depth the way they do on the device.

Why cuts and not extra graph outputs: onert 0.1.0 returns wrong values for an intermediate
tensor exposed as an extra output (99 LSB off on a fused CONV_2D+RELU6, where the graph cut at
the same tensor is 1 LSB off). TICO's reference runtime reads extra outputs correctly (checked
against prefix cuts), so its accumulated numbers come from one run with extra outputs.

Runtimes: ``onert`` (ONE's runtime, integer kernels, in a child process), ``tico`` (TICO's
reference runtime, FAKE_QUANTIZE), or ``auto``: onert wherever it runs and is known to be right,
TICO for graphs hitting onert's known defects (``runtimes.onert_unreliable``) or that onert
refuses. Each number says which runtime produced it.

The final output is compared once more from the complete converted model (its exact bytes):
max and mean LSB, share of exact elements and top-k agreement (k = 1, 5; tie-aware: one of
circle's top-k counts when PyTorch's value there is among PyTorch's k largest).

PyTorch side: the TorchScript frontend's source record (``ir.SourceRecord``) holds the frozen
module (``record.module``) and which TorchScript value each source tensor is (``record.values``). A copy of that graph gets
a clone of each such value as an extra output; the module itself is never modified.

The .pt2 (PT2E) frontend's record holds which node of the exported graph each source tensor stands
for (``record.nodes``: a quantized tensor is the output of its ``quantize_per_tensor`` node, i.e.
PyTorch's integer codes; a float tensor is the float node, e.g. a ``dequantize_per_tensor`` or a
conv left float). The exported program itself is run (``torch.export.load``, ``ep.module()``) by a
``torch.fx.Interpreter`` that keeps every such node's output. PT2E's int8 codes become circle's
uint8 codes by the exact +128 shift (same scale, zero point + 128), as the converter writes them.
The engine does not apply: the program computes with float ops between quantize/dequantize.

Float layers (PT2E X86/Arm quantizers leave ops float between DEQUANTIZE and QUANTIZE) have no
integer grid: they are compared in float, as ``max_abs`` (max |difference| in real units) and
``range_share`` (``max_abs`` divided by the range, max - min, of PyTorch's tensor); their LSB
numbers are None. The table shows ``max_abs`` in the max column of such rows and lists both
below the table.

JSON keys (``FidelityReport.to_dict``): ``REPORT_KEYS``; each entry of ``layers``: ``LAYER_KEYS``;
its ``per_op`` / ``accumulated``: ``STATS_KEYS``; ``final``: ``FINAL_KEYS``.

CLI: ``python -m onelib.pytorch_quant.report MODEL.pt --input_shapes 1,3,16,16 [--input x.npy]
[--runtime auto|onert|tico] [--engine x86|qnnpack] [--json out.json] [--plot out.png]``, or
``python -m onelib.pytorch_quant.report MODEL.pt2 [...]`` (shapes and engine do not apply).
"""
import argparse
import json
import os
import struct
import sys
import time
import zlib

from .errors import ConversionError

__all__ = ["fidelity", "FidelityReport", "main", "RUNTIMES",
           "REPORT_KEYS", "LAYER_KEYS", "STATS_KEYS", "FINAL_KEYS"]

RUNTIMES = ("auto", "onert", "tico", "luci-interpreter")   # luci-interpreter: ONE's, via ONE_BIN_DIR

REPORT_KEYS = ("model", "engine", "runtime", "input", "options", "layers", "first_over_1lsb",
               "final", "notes", "timings")
LAYER_KEYS = ("index", "name", "pytorch_op", "circle_ops", "shape", "dtype", "scale", "zero_point",
              "per_op", "accumulated")
STATS_KEYS = ("max_lsb", "mean_lsb", "exact_share", "max_abs", "range_share", "runtime", "note", "error")
FINAL_KEYS = ("name", "shape", "scale", "max_lsb", "mean_lsb", "exact_share", "max_abs", "range_share",
              "top1", "top5", "runtime", "note", "error")
PT2_ENGINE = "exported program"   # the 'engine' of a .pt2 report: the program's own float ops

_ACT = {1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
_INT_RANGE = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767)}


class _FidelityError(ConversionError):
    """The fidelity report cannot be made (the message says why)."""


# ------------------------------------------------------------------------------ values
class _Value(object):
    """One PyTorch tensor: integer codes with (scale, zero point), or a float array."""

    __slots__ = ("array", "scale", "zero_point")

    def __init__(self, array, scale=None, zero_point=None):
        self.array = array
        self.scale = scale
        self.zero_point = zero_point

    @property
    def quantized(self):
        return self.scale is not None

    def real(self):
        import numpy as np
        if self.quantized:
            return (self.array.astype(np.float64) - self.zero_point) * float(self.scale)
        return self.array.astype(np.float64)


def _value_from_torch(t):
    import numpy as np
    import torch
    if t.is_quantized:
        if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            return _Value(t.int_repr().numpy().astype(np.int64), float(t.q_scale()), int(t.q_zero_point()))
        return _Value(t.dequantize().numpy().astype(np.float32))
    return _Value(t.detach().numpy().copy())


# ----------------------------------------------------------------------- PyTorch probe
class _TorchScriptProbe(object):
    """Runs a frozen TorchScript module once and returns every recorded intermediate tensor."""

    def __init__(self, record):
        self.module = record.module
        self.torch_values = record.values   # id(source tensor) -> torch._C.Value
        self.n_inputs = len(list(self.module.graph.inputs())) - 1

    def run(self, inputs):
        """``inputs``: float arrays in PyTorch's layout. Returns (outputs, {id(source tensor): _Value})."""
        import torch
        orig = self.module.graph
        g = orig.copy()   # the module's own graph is shared with the conversion: never edit it
        vmap = {}
        for a, b in zip(orig.inputs(), g.inputs()):
            vmap[a.unique()] = b
        for na, nb in zip(orig.nodes(), g.nodes()):
            if na.kind() != nb.kind():
                raise _FidelityError("internal: the copy of the TorchScript graph differs at %s" % na.kind())
            for a, b in zip(na.outputs(), nb.outputs()):
                vmap[a.unique()] = b
        tensor_type = torch._C.TensorType.get()
        wanted = []
        for key, v in self.torch_values.items():
            v2 = vmap.get(v.unique())
            if v2 is not None and v2.type().isSubtypeOf(tensor_type):
                wanted.append((key, v2))
        none = g.insertConstant(None)
        none.node().moveBefore(next(iter(g.nodes())))
        probes = []
        for key, v2 in wanted:
            # a clone right after the producer: a later in-place op must not change what we read
            n = g.create("aten::clone", [v2, none])
            n.insertAfter(v2.node())
            n.output().setType(v2.type())
            probes.append(n.output())
        old = list(g.outputs())
        tup = g.create("prim::TupleConstruct", old + probes)
        tup.output().setType(torch._C.TupleType([v.type() for v in old + probes]))
        g.appendNode(tup)
        while len(list(g.outputs())):
            g.eraseOutput(0)
        g.registerOutput(tup.output())
        g.lint()
        fn = torch._C._create_function_from_graph("fidelity_probe", g)
        if len(inputs) != self.n_inputs:
            raise _FidelityError("the model takes %d inputs, %d given" % (self.n_inputs, len(inputs)))
        with torch.no_grad():
            res = fn(self.module._c, *[torch.from_numpy(a) for a in inputs])
        outs = _flatten_tensors(res[:len(old)])
        values = {key: _value_from_torch(t) for (key, _), t in zip(wanted, res[len(old):])}
        return [_value_from_torch(t) for t in outs], values


def _flatten_tensors(x):
    if isinstance(x, (tuple, list)):
        out = []
        for item in x:
            out.extend(_flatten_tensors(item))
        return out
    return [x]


class _PT2Probe(object):
    """Runs an exported program (``ep.module()``) node by node with a ``torch.fx.Interpreter``
    and keeps the output of every node a source tensor stands for (``record.nodes``)."""

    def __init__(self, graph, record, program=None):
        self.sgraph = graph
        self.nodes = record.nodes       # id(source tensor) -> FX node name
        self.program = program          # an in-memory ExportedProgram, else load graph.source
        self.labels = {}                # id(source tensor) -> what PyTorch computes there

    def run(self, inputs):
        """``inputs``: float arrays in PyTorch's layout. Returns (outputs, {id(source tensor): _Value})."""
        import torch
        ep = self.program if self.program is not None else _load_program(self.sgraph.source)
        gm = ep.module()
        wanted = set(self.nodes.values())
        quantize = _quantize_targets()
        found, grids = {}, {}

        class Recorder(torch.fx.Interpreter):
            def run_node(self, n):
                if n.name in wanted and n.target in quantize:
                    args, kwargs = self.fetch_args_kwargs_from_env(n)
                    grids[n.name] = _quantize_args(n.target, args, kwargs)
                out = super(Recorder, self).run_node(n)
                if n.name in wanted and isinstance(out, torch.Tensor):
                    found[n.name] = out.detach().clone()   # a later in-place op must not change it
                return out

        n_inputs = len([n for n in gm.graph.nodes if n.op == "placeholder"])
        if len(inputs) != n_inputs:
            raise _FidelityError("the model takes %d inputs, %d given" % (n_inputs, len(inputs)))
        with torch.no_grad():
            res = Recorder(gm).run(*[torch.from_numpy(a) for a in inputs])
        by_name = dict((n.name, n) for n in gm.graph.nodes)
        values = {}
        for s in self.sgraph.tensors():
            name = self.nodes.get(id(s))
            if name is None or name not in found:
                continue
            v = _pt2_value(s, found[name], grids.get(name))
            if v is not None:
                values[id(s)] = v
                self.labels[id(s)] = _pt2_label(by_name.get(name), quantize)
        outs = [_value_from_torch(t) for t in _flatten_tensors(res) if isinstance(t, torch.Tensor)]
        return outs, values


def _load_program(path):
    """torch.export.load with the quantized_decomposed ops registered (torch's FX module, else
    torchao's)."""
    import torch
    try:
        import torch.ao.quantization.fx._decomposed  # noqa: F401  registers quantized_decomposed
    except ImportError:
        pass
    try:
        return torch.export.load(path)
    except Exception:
        try:
            import torchao  # noqa: F401  registers its ops (and quantized_decomposed) if installed
        except ImportError:
            raise
        return torch.export.load(path)


def _quantize_targets():
    import torch
    ops = set()
    try:
        qd = torch.ops.quantized_decomposed.quantize_per_tensor
    except (AttributeError, RuntimeError):
        return ops
    for overload in ("default", "tensor", "tensor2"):
        op = getattr(qd, overload, None)
        if op is not None:
            ops.add(op)
    return ops


def _quantize_args(target, args, kwargs):
    """(scale, zero point) of a quantize_per_tensor call (numbers or one-element tensors)."""
    names = [a.name for a in target._schema.arguments]
    a = dict(zip(names, args))
    a.update(kwargs)
    return float(a["scale"]), int(a["zero_point"])


def _pt2_value(s, t, grid):
    """Source tensor ``s``'s PyTorch value from its node's output ``t``: a quantize node's integer
    codes with that node's (scale, zero point); a float node's values, put on ``s``'s grid the way
    quantize_per_tensor does (float32 x * (1/scale), half to even) when ``s`` is quantized (a
    pool on its input's grid, an output before a fused relu)."""
    import numpy as np
    if grid is not None:
        return _Value(t.numpy().astype(np.int64), grid[0], grid[1])
    if not t.dtype.is_floating_point:
        return None
    arr = t.float().numpy()
    q = s.qparams
    if q is None or s.dtype not in _INT_RANGE or not q.per_tensor:
        return _Value(arr.copy())
    scale, zp = float(q.scale[0]), int(q.zero_point[0])
    lo, hi = _INT_RANGE[s.dtype]
    codes = np.clip(np.round(arr * np.float32(1.0 / scale)) + zp, lo, hi)
    return _Value(codes.astype(np.int64), scale, zp)


def _pt2_label(node, quantize):
    """``q(conv2d_1)`` for a quantize node's integers, ``dq(add)`` for a dequantize of them, else
    the FX node's name."""
    if node is None:
        return ""

    def arg0(n):
        a = n.args[0] if n.args else None
        return a if hasattr(a, "name") and hasattr(a, "op") else None

    if node.target in quantize and arg0(node) is not None:
        return "q(%s)" % arg0(node).name
    if "dequantize_per_tensor" in str(node.target) and arg0(node) is not None:
        src = arg0(node)
        if src.target in quantize and arg0(src) is not None:
            src = arg0(src)
        return "dq(%s)" % src.name
    return node.name


def _is_pt2(source):
    from . import api
    if type(source).__name__ == "ExportedProgram":
        return True
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        return api.detect_format(os.fspath(source)) == "pt2"
    return False


def _probe_for(sgraph, record, source=None):
    """The PyTorch side of the comparison for a source graph.

    A probe has ``run(inputs) -> (outputs, {id(source tensor): _Value})``: it runs the model the
    frontend read on float inputs in PyTorch's layout and returns the model outputs and the value
    of every source tensor it can observe. TorchScript: extra outputs on a copy of the frozen
    graph. .pt2: the exported program (``source`` when it is an in-memory ExportedProgram, else
    loaded from ``sgraph.source``) run node by node (``torch.fx.Interpreter``), the source tensors
    mapped to FX node names by the frontend. Nothing else in this module depends on the input form.
    """
    if record is not None and record.form == "torchscript" and record.module is not None:
        return _TorchScriptProbe(record)
    if record is not None and record.form == "pt2":
        program = source if type(source).__name__ == "ExportedProgram" else None
        return _PT2Probe(sgraph, record, program)
    raise _FidelityError("%s: the fidelity report needs PyTorch's intermediate tensors, which this "
                         "input form does not provide" % sgraph.source)


def _torch_op_name(record, s, labels=None):
    if labels and labels.get(id(s)):
        return labels[id(s)]
    v = record.values.get(id(s)) if record is not None else None
    try:
        return v.node().kind()
    except Exception:
        return ""


# ----------------------------------------------------------------------- circle side
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
    """write_circle renames duplicate tensor names in place: restore them on the shared tensors."""
    from .circle.writer import write_circle
    names = [(t, t.name) for t in graph.tensors()]
    try:
        return write_circle(graph)
    finally:
        for t, n in names:
            t.name = n


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
    from . import runtimes
    if requested != "auto":
        return requested, None
    why = runtimes.onert_unreliable(graph)
    return ("tico", "ran on TICO, not onert: " + why) if why else ("onert", None)


def _execute(jobs, requested, say):
    """Run every job; in auto mode a job onert refuses is rerun on TICO (and says so)."""
    from . import runtimes
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


def _first_line(text):
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    # onert's C++ reason is usually the last line of its stderr; keep both ends
    if len(lines) > 1:
        return "%s ... %s" % (lines[0], lines[-1])
    return lines[0] if lines else "unknown error"


# -------------------------------------------------------------------------------- report
class FidelityReport(object):
    """Per-layer and final differences between the circle model and PyTorch (see module doc)."""

    def __init__(self, model, engine, runtime, input_desc, options, layers, final, notes, timings):
        self.model = model
        self.engine = engine
        self.runtime = runtime
        self.input = input_desc
        self.options = options
        self.layers = layers        # list of dicts with LAYER_KEYS
        self.final = final          # dict with FINAL_KEYS (the first model output)
        self.notes = notes
        self.timings = timings

    @property
    def first_over_1lsb(self):
        """The first layer (graph order) whose per-op error exceeds 1 LSB, or None."""
        for row in self.layers:
            m = row["per_op"].get("max_lsb")
            if m is not None and m > 1:
                return row["name"]
        return None

    def to_dict(self):
        return {"model": self.model, "engine": self.engine, "runtime": self.runtime, "input": self.input,
                "options": self.options, "layers": self.layers, "first_over_1lsb": self.first_over_1lsb,
                "final": self.final, "notes": self.notes, "timings": self.timings}

    def to_json(self, path):
        from .fileutil import write_atomic
        write_atomic(path, (json.dumps(self.to_dict(), indent=1, default=str) + "\n").encode("utf-8"))

    # -- text ------------------------------------------------------------------------------
    def table(self):
        head = ["#", "layer", "pytorch op", "circle op(s)", "scale",
                "max", "mean", "exact", "on", "max", "mean", "exact", "on"]
        rows = []
        for r in self.layers:
            rows.append([str(r["index"]), r["name"], r["pytorch_op"], r["circle_ops"],
                         "%.6g" % r["scale"] if r["scale"] else "-"]
                        + _stat_cells(r["per_op"]) + _stat_cells(r["accumulated"]))
        widths = [max(len(x) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
        right = {0, 4, 5, 6, 7, 9, 10, 11}

        def fmt(cells):
            out = []
            for i, c in enumerate(cells):
                out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
                if i in (4, 8):
                    out.append("|")
            return "  ".join(out).rstrip()

        header = fmt(head)
        bar1 = header.index("|")
        bar2 = header.index("|", bar1 + 1)
        lines = ["fidelity of %s: circle vs PyTorch (engine %s), runtime %s"
                 % (self.model, self.engine, self.runtime),
                 "input: %s" % self.input,
                 "LSB = steps of each tensor's own scale; scale '-': a float tensor, compared in float "
                 "(max = max |difference| in real units)",
                 "",
                 (" " * bar1 + "| " + "per-op (PyTorch's inputs)".ljust(bar2 - bar1 - 2) + "| "
                  + "accumulated (graph cut)"),
                 header,
                 "-" * len(header)]
        lines += [fmt(c) for c in rows]
        lines.append("")
        errs = [(r["name"], k, r[k]["error"]) for r in self.layers for k in ("per_op", "accumulated")
                if r[k].get("error")]
        for name, k, e in errs:
            lines.append("%s %s: %s" % (name, k.replace("_", "-"), e))
        floats = [r for r in self.layers if not r["scale"]]
        if floats:
            lines.append("float layers: max |difference| and its share of the range (max - min) of "
                         "PyTorch's tensor")
            for r in floats:
                lines.append("  %s: per-op %s, accumulated %s"
                             % (r["name"], _float_diff(r["per_op"]), _float_diff(r["accumulated"])))
        first = self.first_over_1lsb
        lines.append("first layer over 1 LSB per op: %s" % (first or "none"))
        f = self.final
        if f.get("error"):
            lines.append("final output %s: %s" % (f.get("name"), f["error"]))
        elif f["max_lsb"] is None:
            lines.append("final output %s (%s, float): max |difference| %s, exact %s, top-1 %s, top-5 %s (%s)"
                         % (f["name"], "x".join(map(str, f["shape"])), _float_diff(f), _pct(f["exact_share"]),
                            _pct(f["top1"]), _pct(f["top5"]), f["runtime"]))
        else:
            lines.append("final output %s (%s, scale %s): max %s LSB, mean %s LSB, exact %s, top-1 %s, top-5 %s (%s)"
                         % (f["name"], "x".join(map(str, f["shape"])), "%.6g" % f["scale"] if f["scale"] else "-",
                            _num(f["max_lsb"]), _num(f["mean_lsb"], "%.3f"), _pct(f["exact_share"]),
                            _pct(f["top1"]), _pct(f["top5"]), f["runtime"]))
        for n in self.notes:
            lines.append("note: " + n)
        t = self.timings
        lines.append("time: " + ", ".join("%s %.2fs" % (k, v) for k, v in t.items()))
        return "\n".join(lines)

    # -- picture ---------------------------------------------------------------------------
    def plot(self, path):
        """PNG bar chart: max LSB per layer, per-op and accumulated, with the 1-LSB line."""
        from .fileutil import write_atomic
        write_atomic(path, _render_png(self))


def _num(v, fmt="%d"):
    return "-" if v is None else fmt % v


def _pct(v):
    return "-" if v is None else "%.1f%%" % (100.0 * v)


def _float_diff(s):
    if s.get("error") or s.get("max_abs") is None:
        return "-"
    share = s.get("range_share")
    return "%.3g (%s of the range)" % (s["max_abs"], "-" if share is None else "%.4g%%" % (100.0 * share))


def _stat_cells(s):
    if s.get("error"):
        return ["err", "-", "-", s.get("runtime") or "-"]
    if s.get("max_lsb") is None and s.get("max_abs") is not None:   # a float tensor: real units
        return ["%.1e" % s["max_abs"], "-", _pct(s.get("exact_share")), s.get("runtime") or "-"]
    return [_num(s.get("max_lsb")), _num(s.get("mean_lsb"), "%.3f"), _pct(s.get("exact_share")),
            s.get("runtime") or "-"]


# --------------------------------------------------------------------------------- main
def fidelity(source, options=None, x=None, runtime="auto", seed=0, engine=None, progress=None):
    """Compare the circle conversion of ``source`` with PyTorch, layer by layer.

    ``source``: a TorchScript file (or ScriptModule), or a PT2E ``.pt2`` file (or ExportedProgram).
    ``options``: ``api.ConvertOptions`` (not modified; ``input_shapes`` defaults to ``x``'s
    shapes). ``x``: the model input(s) in PyTorch's layout, as arrays or ``.npy`` paths; default:
    random codes on the input quantizer's grid (codes 0..127 under x86/fbgemm, which calibrate
    inputs with reduce_range, else the full dtype range). ``runtime``: ``auto``, ``onert`` or
    ``tico``. ``engine``: PyTorch's quantized engine to load and run a TorchScript model under
    (default: the current one; packed weights follow it); a .pt2 runs its own float ops, so the
    engine does not apply (reported as ``PT2_ENGINE``). Returns a ``FidelityReport``.
    """
    from . import api
    if runtime not in RUNTIMES:
        raise _FidelityError("runtime must be one of %s, not %r" % ("/".join(RUNTIMES), runtime))
    say = progress or (lambda msg: None)
    opts = api.ConvertOptions(**{k: getattr(options, k) for k in api.ConvertOptions.FIELDS}) \
        if options is not None else api.ConvertOptions()
    xs = _load_inputs(x)
    if xs is not None and not opts.input_shapes:
        opts.input_shapes = [list(a.shape) for a in xs]
    import torch
    notes, old_engine = [], None
    if _is_pt2(source):
        eng = PT2_ENGINE
        if engine:
            notes.append("engine %r does not apply to a .pt2: the exported program computes with its "
                         "own float ops between quantize and dequantize" % engine)
    else:
        eng = engine or torch.backends.quantized.engine
        if eng not in torch.backends.quantized.supported_engines:
            raise _FidelityError("quantized engine %r is not available here (have %s)"
                                 % (eng, ", ".join(torch.backends.quantized.supported_engines)))
        old_engine = torch.backends.quantized.engine
        torch.backends.quantized.engine = eng
    timings = {}
    try:
        t0 = time.time()
        conv = api.convert(source, opts, progress=say)
        timings["convert"] = time.time() - t0
        sgraph = conv.source_graph
        probe = _probe_for(sgraph, conv.source_record, source)
        xs, input_desc = _inputs_for(sgraph, xs, eng, seed)
        t0 = time.time()
        try:
            torch_outs, values = probe.run([a.astype("float32") for a in xs])
        except ConversionError:
            raise
        except Exception as e:   # torch's own message says what went wrong
            raise _FidelityError("PyTorch could not run %s: %s" % (sgraph.source, _first_line(str(e))))
        timings["pytorch"] = time.time() - t0
    finally:
        if old_engine is not None:
            torch.backends.quantized.engine = old_engine
    for s, a in zip(sgraph.inputs, xs):
        if id(s) not in values:
            values[id(s)] = _Value(a.astype("float32"))
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        model = os.path.basename(os.fspath(source))
    else:
        model = type(source).__name__
    layers, final, more = _compare(conv, values, torch_outs, opts, runtime, say, timings,
                                   getattr(probe, "labels", None))
    options_used = {k: getattr(opts, k) for k in api.ConvertOptions.FIELDS}
    return FidelityReport(model, eng, runtime, input_desc, options_used, layers, final, notes + more,
                          dict((k, round(v, 3)) for k, v in timings.items()))


def _inputs_for(sgraph, xs, engine, seed):
    if xs is None:
        xs, input_desc = _random_inputs(sgraph, engine, seed)
    else:
        input_desc = "given (%s)" % ", ".join("x".join(map(str, a.shape)) for a in xs)
    shapes = [list(t.shape) for t in sgraph.inputs]
    if [list(a.shape) for a in xs] != shapes:
        raise _FidelityError("the input is %s, the model was converted for %s"
                             % (_shapes_str(a.shape for a in xs), _shapes_str(shapes)))
    return xs, input_desc


def _shapes_str(shapes):
    return ":".join(",".join(str(d) for d in sh) for sh in shapes)


def _load_inputs(x):
    import numpy as np
    if x is None:
        return None
    items = x if isinstance(x, (list, tuple)) else [x]
    out = []
    for item in items:
        if isinstance(item, str) or hasattr(item, "__fspath__"):
            p = os.fspath(item)
            try:
                item = np.load(p, allow_pickle=False)
            except Exception as e:
                raise _FidelityError("%s: cannot read as a .npy array: %s" % (p, e))
        out.append(np.ascontiguousarray(np.asarray(item, dtype=np.float32)))
    return out


def _random_inputs(sgraph, engine, seed):
    """Float inputs exactly on the input quantizer's grid (so QUANTIZE rounding cannot differ)."""
    import numpy as np
    rng = np.random.RandomState(seed)
    cons = sgraph.consumers()
    xs, descs = [], []
    for s in sgraph.inputs:
        q, dtype = s.qparams, s.dtype
        if q is None:
            for op in cons.get(id(s), []):
                if op.kind == "quantize":
                    q, dtype = op.outputs[0].qparams, op.outputs[0].dtype
                    break
        if s.shape is None:
            raise _FidelityError("input %s has no shape: give input_shapes" % s.name)
        if q is None or dtype not in _INT_RANGE:
            xs.append(rng.standard_normal(s.shape).astype(np.float32))
            descs.append("%s: standard normal" % s.name)
            continue
        lo, hi = _INT_RANGE[dtype]
        if engine in ("x86", "fbgemm") and dtype == "uint8":
            hi = 127   # x86/fbgemm calibrate activations with reduce_range: stay in what it saw
        codes = rng.randint(lo, hi + 1, size=s.shape)
        zp, scale = int(q.zero_point[0]), np.float32(q.scale[0])
        xs.append(((codes - zp).astype(np.float32) * scale).astype(np.float32))
        descs.append("%s: random codes %d..%d on its grid (scale %.6g, zero point %d)" % (s.name, lo, hi, scale, zp))
    return xs, "; ".join(descs) + ", seed %d" % seed


def _compare(conv, values, torch_outs, opts, runtime, say, timings, labels=None):
    from . import ir
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


# ---------------------------------------------------------------------------------- PNG
_FONT = {  # 5x7 glyphs, one byte per row (bit 4 = leftmost column); lower case is drawn upper case
    '0': '0e11131519110e', '1': '040c040404040e', '2': '0e11010204081f', '3': '1f02040201110e',
    '4': '02060a121f0202', '5': '1f101e0101110e', '6': '0608101e11110e', '7': '1f010204080808',
    '8': '0e11110e11110e', '9': '0e11110f01020c', 'A': '0e11111f111111', 'B': '1e11111e11111e',
    'C': '0e11101010110e', 'D': '1c12111111121c', 'E': '1f10101e10101f', 'F': '1f10101e101010',
    'G': '0e11101711110f', 'H': '1111111f111111', 'I': '0e04040404040e', 'J': '0702020202120c',
    'K': '11121418141211', 'L': '1010101010101f', 'M': '111b1515111111', 'N': '11111915131111',
    'O': '0e11111111110e', 'P': '1e11111e101010', 'Q': '0e11111115120d', 'R': '1e11111e141211',
    'S': '0f10100e01011e', 'T': '1f040404040404', 'U': '1111111111110e', 'V': '11111111110a04',
    'W': '1111111515150a', 'X': '11110a040a1111', 'Y': '11110a04040404', 'Z': '1f01020408101f',
    ' ': '00000000000000', '.': '00000000000c0c', ',': '000000000c0408', ':': '000c0c000c0c00',
    '-': '0000001f000000', '_': '0000000000001f', '/': '00010204081000', '(': '02040808080402',
    ')': '08040202020408', '+': '0004041f040400', '=': '00001f001f0000', '%': '18190204081303',
    '<': '02040810080402', '>': '08040201020408', '?': '0e110102040004', '#': '0a0a1f0a1f0a0a',
    '*': '0004150e150400',
}


class _Canvas(object):
    def __init__(self, w, h, bg=(255, 255, 255)):
        self.w, self.h = w, h
        self.px = bytearray(bytes(bg) * (w * h))

    def rect(self, x0, y0, x1, y1, color):
        x0, x1 = max(0, min(x0, x1)), min(self.w, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.h, max(y0, y1))
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            i = (y * self.w + x0) * 3
            self.px[i:i + len(row)] = row

    def text(self, x, y, s, color=(0, 0, 0), vertical=False):
        """5x7 text from (x, y) at its top-left; ``vertical`` runs bottom to top."""
        for ch in s.upper():
            glyph = _FONT.get(ch, _FONT["?"])
            for r in range(7):
                bits = int(glyph[2 * r:2 * r + 2], 16)
                for c in range(5):
                    if bits & (0x10 >> c):
                        if vertical:
                            self.rect(x + r, y - c, x + r + 1, y - c + 1, color)
                        else:
                            self.rect(x + c, y + r, x + c + 1, y + r + 1, color)
            if vertical:
                y -= 6
            else:
                x += 6

    def png(self):
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3]) for y in range(self.h))

        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _render_png(report):
    per = [r["per_op"].get("max_lsb") for r in report.layers]
    acc = [r["accumulated"].get("max_lsb") for r in report.layers]
    failed = [(bool(r["per_op"].get("error")), bool(r["accumulated"].get("error"))) for r in report.layers]
    names = [r["name"] for r in report.layers]
    n = max(len(names), 1)
    top = max([v for v in per + acc if v is not None] + [2])
    slot = 28
    label_h = 6 * min(max([len(s) for s in names] + [4]), 40) + 10
    left, right, head, foot = 48, 16, 40, label_h
    plot_h = 240
    w, h = left + slot * n + right, head + plot_h + foot
    title = "LSB error per layer: %s (%s, %s)" % (report.model, report.engine, report.runtime)
    w = max(w, 360, 16 + 6 * len(title))
    cv = _Canvas(w, h)
    cv.text(8, 6, title)
    per_c, acc_c, bad_c = (66, 110, 200), (240, 150, 40), (200, 30, 30)
    cv.rect(8, 20, 16, 28, per_c)
    cv.text(20, 21, "per-op (PyTorch inputs)")
    cv.rect(180, 20, 188, 28, acc_c)
    cv.text(192, 21, "accumulated")
    y0 = head + plot_h                          # the zero line

    def ypos(v):
        return y0 - int(round(float(v) / top * (plot_h - 10)))

    step = max(1, int(round(top / 5.0)))
    for v in range(0, top + 1, step):        # y axis ticks and grid
        y = ypos(v)
        cv.rect(left - 4, y, w - right, y + 1, (225, 225, 225))
        cv.text(left - 8 - 6 * len(str(v)), y - 3, str(v))
    one = ypos(1)                             # the 1-LSB tolerance line, dashed
    for x in range(left, w - right, 6):
        cv.rect(x, one, x + 3, one + 1, bad_c)
    cv.rect(left, head, left + 1, y0 + 1, (0, 0, 0))
    cv.rect(left, y0, w - right, y0 + 1, (0, 0, 0))
    for i in range(len(names)):
        x = left + i * slot + 4
        for k, (v, color) in enumerate(((per[i], per_c), (acc[i], acc_c))):
            bx = x + k * 10
            if v is None:   # '?' no number (an error), 'F' a float tensor (no grid to count LSB on)
                cv.text(bx, y0 - 9, "?" if failed[i][k] else "F", bad_c if failed[i][k] else (120, 120, 120))
                continue
            c = bad_c if (k == 0 and v > 1) else color
            cv.rect(bx, min(ypos(v), y0 - 1), bx + 9, y0, c)
        cv.text(x + 4, y0 + 6 + 6 * min(len(names[i]), 40), names[i][:40], vertical=True)
    return cv.png()


# ----------------------------------------------------------------------------------- CLI
def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m onelib.pytorch_quant.report",
        description="Layer-by-layer fidelity of a PyTorch-quantized model converted to circle: each "
                    "layer's error in LSB, fed PyTorch's own inputs (per-op) and through the graph "
                    "(accumulated), on onert or TICO's reference runtime.")
    p.add_argument("model", help="TorchScript file of a quantized model, or a PT2E .pt2 (torch.export.save)")
    p.add_argument("--input_shapes", default=None, help="e.g. 1,3,224,224 (several separated by ':'); "
                                                        "TorchScript only (a .pt2 records its shapes)")
    p.add_argument("--input", action="append", default=None, metavar="X.npy",
                   help="model input in PyTorch's layout (repeat for several inputs); default: random "
                        "values on the input quantizer's grid")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="auto: onert where it runs and is known right, TICO elsewhere; luci-interpreter: ONE's circle-interpreter from ONE_BIN_DIR")
    p.add_argument("--engine", default=None, help="PyTorch quantized engine to run a TorchScript model "
                                                  "under (x86, qnnpack, ...; default: torch's current one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    p.add_argument("--profile", choices=("luci", "onert"), default=None,
                   help="convert with this profile (onert: exact on onert and luci-interpreter)")
    p.add_argument("--fc_as_conv", action="store_true", help="deprecated alias of --profile onert")
    p.add_argument("--io_layout", choices=("nchw", "nhwc"), default=None)
    p.add_argument("--input_type", default=None)
    p.add_argument("--output_type", default=None)
    p.add_argument("--json", default=None, metavar="OUT.json", help="write the report as JSON")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="write a PNG bar chart of LSB per layer")
    p.add_argument("-V", "--verbose", action="store_true", help="print each stage to stderr")
    return p


def options_from_args(args):
    from . import api, cfgfile
    kw = {}
    if args.input_shapes:
        kw["input_shapes"] = cfgfile.parse_shapes(args.input_shapes)
    if args.fc_as_conv:
        kw["profile"] = "onert"
    if args.profile:
        kw["profile"] = args.profile
    for k in ("io_layout", "input_type", "output_type"):
        if getattr(args, k):
            kw[k] = getattr(args, k)
    return api.ConvertOptions(**kw)


def main(argv=None):
    """Command line entry; returns the exit code (0 ok, 1 failure). Reusable by the driver."""
    args = build_parser().parse_args(argv)
    say = (lambda m: sys.stderr.write("fidelity: %s\n" % m)) if args.verbose else None
    try:
        opts = options_from_args(args)
        rep = fidelity(args.model, opts, x=args.input, runtime=args.runtime, seed=args.seed,
                       engine=args.engine, progress=say)
        print(rep.table())
        if args.json:
            rep.to_json(args.json)
        if args.plot:
            rep.plot(args.plot)
    except (ConversionError, ValueError, OSError) as e:
        if args.verbose:
            import traceback
            traceback.print_exc()
        sys.stderr.write("one-import-pytorch-quant: %s: %s\n" % (type(e).__name__.lstrip("_"), e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
