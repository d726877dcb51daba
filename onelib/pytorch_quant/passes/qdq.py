"""Q/DQ folding for the .pt2 (PT2E) reader: where PyTorch's quantize/dequantize pairs land in the
source IR.

A PT2E graph is a float graph with ``quantize_per_tensor`` / ``dequantize_per_tensor`` pairs on
the activations. An op is quantized when all its activation inputs are and every reader of its
output quantizes it onto one grid (the reader finds that grid: ``spec``); it then takes that
grid, except the kinds whose kernels keep the input's grid (``registry.SAME_GRID``), which compute
on the input's grid and are requantized. Every other op runs in float: a quantized value feeding
it goes through one shared ``dequantize`` op, and a ``quantize`` op is emitted where PyTorch
quantizes a float value. Quantizers that use fewer codes than their dtype (x86 reduce_range) get
an explicit clamp on the grid.

``QdqFolder`` is made by api.py and handed to the .pt2 reader (``FrontendServices.qdq``), which
calls it while it walks, in graph order, so that ops land where they land today. A ``spec`` is
any object with ``dtype``, ``qparams``, ``qmin``, ``qmax`` and ``matches(tensor)``.
"""
from ..ir import Op, Tensor
from ..ops.quant import INT_RANGE
from ..ops.registry import SAME_GRID


class QdqFolder(object):
    def __init__(self, graph):
        self.graph = graph
        self.float_of = {}      # id(quantized Tensor) -> its dequantize output
        self.clamped = {}       # (id(Tensor), qmin, qmax) -> clamped Tensor
        self.range_clamps = []  # names of the clamps that keep a narrow quant_min..quant_max

    def as_float(self, t):
        """The float value of activation ``t``: itself, or one shared ``dequantize`` op."""
        if t.qparams is None:
            return t
        if id(t) not in self.float_of:
            name = t.name + "/dequantize"
            f = Tensor(name, None, "float32", None)
            self.graph.ops.append(Op("dequantize", [t], [f], {}, name))
            self.float_of[id(t)] = f
        return self.float_of[id(t)]

    def quantize(self, t, spec, name):
        """Activation ``t`` on ``spec``'s grid: itself when it already is, else QUANTIZE of its
        float value (a requantization goes through float: exact, and any runtime runs it)."""
        if spec.matches(t):
            return self.clamp_to_range(t, spec)
        f = self.as_float(t)
        q = Tensor(name, None, spec.dtype, spec.qparams.copy())
        self.graph.ops.append(Op("quantize", [f], [q], {}, name))
        return self.clamp_to_range(q, spec)

    def clamp_to_range(self, t, spec):
        """PyTorch clamps to quant_min..quant_max, circle to the dtype's range. Where those differ
        by more than the one code of a symmetric range (x86 reduce_range: 0..127), clamp
        explicitly, on the grid, so that no integer can differ (a clamp commutes with the
        quantizer)."""
        lo, hi = INT_RANGE[spec.dtype]
        need_lo, need_hi = spec.qmin > lo + 1, spec.qmax < hi - 1
        if not (need_lo or need_hi):
            return t
        key = (id(t), spec.qmin, spec.qmax)
        if key not in self.clamped:
            s, zp = float(spec.qparams.scale[0]), int(spec.qparams.zero_point[0])
            attrs = {"min": (spec.qmin - zp) * s if need_lo else float("-inf"),
                     "max": (spec.qmax - zp) * s if need_hi else float("inf")}
            name = t.name + "/quant_range"
            out = Tensor(name, None, t.dtype, t.qparams.copy())
            self.graph.ops.append(Op("hardtanh", [t], [out], attrs, name))
            self.clamped[key] = out
            self.clamped[(id(out), spec.qmin, spec.qmax)] = out
            self.range_clamps.append("%s (%d..%d)" % (t.name, spec.qmin, spec.qmax))
        return self.clamped[key]

    def place(self, kind, name, acts, consts, attrs, spec):
        """Add source op ``kind`` reading activations ``acts``: quantized onto ``spec`` (the grid
        every reader quantizes its output to; None: run in float on dequantized inputs).
        Returns (the op's own output, the value its readers see: requantized when needed)."""
        if spec is None:
            ins = [self.as_float(a) for a in acts]
            out = Tensor(name, None, "float32", None)
        else:
            ins = list(acts)
            grid = spec
            if kind in SAME_GRID and not spec.matches(acts[0]):
                grid = None   # compute on the input's grid, then requantize below
            out = Tensor(name, None, acts[0].dtype if grid is None else spec.dtype,
                         (acts[0].qparams if grid is None else spec.qparams).copy())
        self.graph.ops.append(Op(kind, ins + list(consts), [out], attrs, name))
        seen = out
        if spec is not None and not spec.matches(out):
            seen = self.quantize(out, spec, name + "/requantize")
        return out, seen

    def finish(self):
        """The note on reduce_range clamps, once the walk is over."""
        if self.range_clamps:
            self.graph.notes.append(
                "%d quantizer(s) use fewer codes than their dtype (x86 reduce_range); PyTorch clamps "
                "to them, so the circle model clamps too (MINIMUM/MAXIMUM on the grid): %s"
                % (len(self.range_clamps), ", ".join(self.range_clamps)))
