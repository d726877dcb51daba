"""One case of the full-size sweep (scripts/fullsize_sweep.py): build, quantize and save it
(``saved_case``), convert it, run it and compare with PyTorch (``run_case``)."""
import os
import time

import numpy as np
import torch

from fullsize_models import ARCHS, PER_PIXEL, quantize
from fullsize_nets import init_params
import qmodels as Q


def _pt2_input_qparams(ep):
    user = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"][0]
    for n in ep.graph.nodes:
        if "quantize_per_tensor" in str(n.target) and "dequantize" not in str(n.target) and \
                getattr(n.args[0], "name", None) == user:
            return float(n.args[1]), int(n.args[2]), int(n.args[3]), int(n.args[4])
    return None


def _output_qparams(cgraph):
    """(scale, zero_point) of the quantized tensor behind each circle graph output."""
    prod = cgraph.producers()
    out = []
    for t in cgraph.outputs:
        op = prod.get(id(t))
        while op is not None and op.kind in ("TRANSPOSE", "RESHAPE") and t.qparams is None:
            t = op.inputs[0]
            op = prod.get(id(t))
        q = op.inputs[0].qparams if op is not None and op.kind == "DEQUANTIZE" else t.qparams
        out.append((float(q.scale[0]), int(q.zero_point[0])) if q is not None else (None, None))
    return out


def _top1(arch, want, got):
    if arch in PER_PIXEL:
        w, g = want[0].reshape(want.shape[1], -1), got[0].reshape(got.shape[1], -1)
        pick = np.argmax(g, axis=0)
        return float(np.mean(w[pick, np.arange(w.shape[1])] >= w.max(axis=0)))
    w = np.asarray(want, np.float64).reshape(-1, want.shape[-1])
    g = np.asarray(got, np.float64).reshape(-1, got.shape[-1])
    pick = np.argmax(g, axis=1)
    return float(np.mean(w[np.arange(len(w)), pick] >= w.max(axis=1)))


# ------------------------------------------------------------------------------ one case
def saved_case(arch, recipe, folder, calib=3, seed=0):
    """Build, quantize and save one case; returns a dict with ``path``, ``shape``, ``x`` (codes on
    the input grid), ``refs`` (PyTorch's outputs), ``spread`` (PyTorch's other engine on the same
    file and input, TorchScript only) and ``quant_s``."""
    factory, hw = ARCHS[arch]
    shape = (1, 3, hw, hw)
    torch.manual_seed(seed)
    model = init_params(factory(), seed)
    t0 = time.time()
    q, engine = quantize(model, recipe, shape, calib)
    quant_s = time.time() - t0
    rng = np.random.RandomState(seed + 7)
    if engine is not None:
        path = os.path.join(folder, "%s_%s.pt" % (arch, recipe))
        Q.trace_and_save(q, shape, path, engine=engine)
        try:
            scale, zp = Q.input_qparams(q)
            qmax = 127 if engine == "x86" else 255
            x = ((rng.randint(0, qmax + 1, size=shape) - zp) * np.float32(scale)).astype(np.float32)
        except ValueError:   # float ops before the QuantStub (transform_input)
            x = rng.randn(*shape).astype(np.float32)
        with Q.engine_ctx(engine), Q._quiet(), torch.no_grad():
            ref = torch.jit.load(path)(torch.from_numpy(x))
        other = "qnnpack" if engine == "x86" else "x86"
        with Q.engine_ctx(other), Q._quiet(), torch.no_grad():
            spread = torch.jit.load(path)(torch.from_numpy(x))   # PyTorch's other engine, same file
    else:
        spread = None
        path = os.path.join(folder, "%s_%s.pt2" % (arch, recipe))
        torch.export.save(q, path)
        grid = _pt2_input_qparams(q)
        if grid is None:
            x = rng.randn(*shape).astype(np.float32)
        else:
            scale, zp, qmin, qmax = grid
            codes = np.clip(np.round(rng.randn(*shape) / scale) + zp, qmin, qmax)
            x = ((codes - zp) * np.float32(scale)).astype(np.float32)
        with torch.no_grad():
            ref = q.module()(torch.from_numpy(x))
    refs = [t.numpy() for t in (ref if isinstance(ref, (tuple, list)) else [ref])]
    return {"path": path, "shape": shape, "x": x, "refs": refs, "spread": spread, "quant_s": quant_s}


def run_case(arch, recipe, folder, calib=3, seed=0, say=print):
    from onelib.pytorch_quant import api, runtimes

    r = {"arch": arch, "recipe": recipe, "error": None}
    c = saved_case(arch, recipe, folder, calib, seed)
    path, shape, x, refs, spread = c["path"], c["shape"], c["x"], c["refs"], c["spread"]
    r["quant_s"] = c["quant_s"]
    r["pt_kb"] = os.path.getsize(path) / 1024.0
    t0 = time.time()
    conv = api.convert(path, api.ConvertOptions(input_shapes=[list(shape)], profile="onert"))
    r["convert_s"] = time.time() - t0
    r["circle_kb"] = len(conv.circle) / 1024.0
    r["ops"] = len(conv.graph.ops)
    why = runtimes.onert_unreliable(conv.graph)
    t0 = time.time()
    if why is None:
        try:
            outs = runtimes.run_onert(conv.circle, [x])
            r["runtime"] = "onert"
        except runtimes.RuntimeFailure as e:
            r["runtime_note"] = str(e).splitlines()[0][:200]
            why = "onert failed"
    if why is not None:
        outs = runtimes.run_tico(conv.circle, [x])
        r["runtime"] = "tico"
        r["runtime_note"] = why
    r["run_s"] = time.time() - t0
    oq = _output_qparams(conv.graph)
    lsbs, top1s = [], []
    for want, got, (s, _) in zip(refs, outs, oq):
        got = np.asarray(got, np.float64).reshape(want.shape)
        diff = np.abs(got - want.astype(np.float64))
        lsbs.append(int(np.rint(diff.max() / s)) if s else float(diff.max()))
        top1s.append(_top1(arch, want, got))
    r["max_lsb"] = max(lsbs)
    r["top1"] = top1s[-1]   # the SSD head: class scores (its last output), not box coordinates
    if spread is not None:
        sp = [t.numpy() for t in (spread if isinstance(spread, (tuple, list)) else [spread])]
        r["spread_lsb"] = max(int(np.rint(np.abs(a.astype(np.float64) - w).max() / s))
                              for a, w, (s, _) in zip(sp, refs, oq))
        r["spread_top1"] = _top1(arch, refs[-1], sp[-1])
    r["notes"] = list(conv.notes)
    return r

