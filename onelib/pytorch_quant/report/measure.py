"""``fidelity()``: convert, run PyTorch on the same input, compare layer by layer."""
import os
import time

from ..errors import ConversionError
from .common import PT2_ENGINE, RUNTIMES, _FidelityError, _INT_RANGE, _Value, _first_line
from .compare import _compare
from .probe import _is_pt2, _probe_for
from .render import FidelityReport


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
    from .. import api
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
            torch_outs, values = probe.run([_as_input(a) for a in xs])
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
            values[id(s)] = _Value(_as_input(a))
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
        out.append(np.ascontiguousarray(_as_input(np.asarray(item))))
    return out


def _as_input(a):
    """A model input as PyTorch takes it: integer ids stay int64, anything else is float32."""
    return a.astype("int64") if a.dtype.kind in "iu" else a.astype("float32")


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
        if s.dtype in ("int64", "int32"):   # ids: every row of the smallest table they index
            rows = [op.inputs[1].shape[0] for op in cons.get(id(s), []) if op.kind == "embedding"]
            n = min(rows) if rows else 1
            xs.append(rng.randint(0, n, size=s.shape).astype(np.int64))
            descs.append("%s: random ids 0..%d" % (s.name, n - 1))
            continue
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

