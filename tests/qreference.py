"""The engines and PyTorch's references for the test models of qmodels.py (re-exported there):
``engine_ctx``, ``input_qparams``, ``grid_input`` (inputs exactly on the input grid) and
``reference`` (PyTorch's output with its qparams, so a test can express errors in LSB)."""
import contextlib
import warnings
from typing import NamedTuple

import numpy as np
import torch

ENGINES = ("x86", "qnnpack")

# torch.ao.quantization and quantized tensors are deprecated in torch 2.13 and warn
# on every call; the warnings are known (torch-quant-forms.md §1) and only add noise.
_QUANT_WARNINGS = (
    r".*torch\.ao\.quantization is deprecated.*",
    r".*quantized tensor creation functions.*",
    r".*torch\.quantize_per_tensor.*deprecated.*",
    r".*torch\.jit\..*deprecated.*",
    r".*reduce_range will be deprecated.*",
    # add_scalar/mul_scalar never run their FloatFunctional's observer (the output
    # qparams are derived from the input), so convert warns about the default
    # qparams it stores; those are never used.
    r".*must run observer before calling calculate_qparams.*",
)


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        for pattern in _QUANT_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        yield


@contextlib.contextmanager
def engine_ctx(engine):
    """Temporarily select the quantized kernel engine.

    Packed weights are repacked for whatever engine is current when a model is
    converted *or* loaded, and the engines round differently, so quantization,
    tracing and reference runs must all happen under the same engine.
    """
    if engine not in torch.backends.quantized.supported_engines:
        raise ValueError("quantized engine %r not supported here (have %s)"
                         % (engine, torch.backends.quantized.supported_engines))
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = old


# ----------------------------------------------------------------------------------
# Inputs on the quantizer grid, and references
# ----------------------------------------------------------------------------------

class QParams(NamedTuple):
    scale: float
    zero_point: int


def _fx_input_qparams(gm):
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.quantize_per_tensor:
            scale, zp = node.args[1], node.args[2]
            if isinstance(scale, torch.fx.Node):
                scale = getattr(gm, scale.target)
            if isinstance(zp, torch.fx.Node):
                zp = getattr(gm, zp.target)
            return QParams(float(scale), int(zp))
    raise ValueError("FX model has no torch.quantize_per_tensor node")


def _script_input_qparams(sm):
    # Traced TorchScript keeps qparams as prim::Constant inputs (§4.1); a frozen
    # copy makes that true for scripted modules too.
    graph = sm.inlined_graph if hasattr(sm, "inlined_graph") else sm.graph
    for node in graph.nodes():
        if node.kind() == "aten::quantize_per_tensor":
            ins = list(node.inputs())
            return QParams(float(ins[1].toIValue()), int(ins[2].toIValue()))
    raise ValueError("TorchScript model has no aten::quantize_per_tensor node")


def input_qparams(qmodel):
    """(scale, zero_point) of the model's input quantizer (eager, FX or traced)."""
    if isinstance(qmodel, torch.jit.ScriptModule):
        return _script_input_qparams(qmodel)
    if isinstance(qmodel, torch.fx.GraphModule):
        return _fx_input_qparams(qmodel)
    quant = getattr(qmodel, "quant", None)
    if quant is None or not hasattr(quant, "scale"):
        raise ValueError("model has no converted QuantStub named 'quant'")
    return QParams(float(quant.scale), int(quant.zero_point))


def grid_input(qmodel_or_scale_zp, shape, seed=0, qmin=0, qmax=255):
    """float32 input whose values are exactly ``(q - zp) * scale``, q in [qmin, qmax].

    ``qmodel_or_scale_zp`` is a quantized model (eager, FX or traced) or a
    ``(scale, zero_point)`` pair. Note that x86 calibrates the input with
    reduce_range (0..127), so the default [0, 255] also exercises saturation.
    """
    if isinstance(qmodel_or_scale_zp, (tuple, list)):
        scale, zp = float(qmodel_or_scale_zp[0]), int(qmodel_or_scale_zp[1])
    else:
        scale, zp = input_qparams(qmodel_or_scale_zp)
    rng = np.random.RandomState(seed)
    q = rng.randint(qmin, qmax + 1, size=tuple(shape))
    # float32 product: (q - zp) is exact, and x / scale lands within a few ulp of an
    # integer, far from any .5 tie, so every rounding mode recovers q.
    return (q - zp).astype(np.float32) * np.float32(scale)


class Reference(NamedTuple):
    """PyTorch output (float32, already dequantized) and its quantized grid."""

    out: np.ndarray
    qparams: QParams

    @property
    def q(self):
        """The output integers (int_repr) recovered from the dequantized floats."""
        s, zp = self.qparams
        return (np.rint(self.out.astype(np.float64) / s) + zp).astype(np.int64)


def _fx_run_capture(gm, x):
    # Run the graph node by node so the quantized tensor feeding the final
    # dequantize can be read; GraphModules have no stub to hook.
    captured = {}

    class _Interp(torch.fx.Interpreter):
        def run_node(self, n):
            val = super().run_node(n)
            captured[n] = val
            return val

    out = _Interp(gm).run(x)
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    src = out_node.args[0]
    if isinstance(src, (tuple, list)):
        raise ValueError("multi-output FX models are not supported")
    if src.op == "call_method" and src.target == "dequantize":
        return out, captured[src.args[0]]
    if isinstance(captured[src], torch.Tensor) and captured[src].is_quantized:
        return out.dequantize(), captured[src]
    raise ValueError("FX model output is float (last op %s runs in float)" % src.format_node())


def reference(qmodel, x, engine):
    """Run ``qmodel`` on ``x`` under ``engine``; returns ``Reference(out, qparams)``.

    For eager models the qparams are read from the quantized tensor entering the
    ``dequant`` module (a forward pre-hook), so it works whatever op precedes it,
    including ops that inherit or derive their qparams (relu, pools, add_scalar).
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    with engine_ctx(engine), _quiet(), torch.no_grad():
        if isinstance(qmodel, torch.fx.GraphModule):
            out, qt = _fx_run_capture(qmodel, xt)
        else:
            deq = getattr(qmodel, "dequant", None)
            if deq is None or isinstance(qmodel, torch.jit.ScriptModule):
                raise TypeError("reference() needs an eager model with a 'dequant' "
                                "module or an FX GraphModule")
            captured = []
            handle = deq.register_forward_pre_hook(lambda mod, args: captured.append(args[0]))
            try:
                out = qmodel(xt)
            finally:
                handle.remove()
            if len(captured) != 1 or not captured[0].is_quantized:
                raise ValueError("expected one quantized tensor entering 'dequant'")
            qt = captured[0]
        if qt.qscheme() not in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            raise ValueError("output is not per-tensor quantized: %s" % qt.qscheme())
        qp = QParams(float(qt.q_scale()), int(qt.q_zero_point()))
    return Reference(out.numpy().astype(np.float32), qp)
