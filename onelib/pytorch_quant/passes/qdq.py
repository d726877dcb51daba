"""Q/DQ folding: where the quantize/dequantize pairs of a .pt2 (PT2E) program land in the source IR.

The .pt2 reader writes the program as it is: an op reading a quantized tensor reads its
dequantized value, a ``quantize`` op (attrs ``quant_min``/``quant_max``) stands where PyTorch
quantizes, an explicit ``dequantize`` op where PyTorch computes on dequantized values whatever
follows (float weights, arithmetic with a constant), and view ops (split, the reshape of a
squeeze or select) keep their input's grid. ``fold_qdq`` then decides, in graph order:

* an op whose activation inputs are all quantized and whose every reader quantizes its output
  onto one grid (directly, or after a single clamp, which commutes with quantization) is
  quantized onto that grid, except the kinds whose kernels keep the input's grid
  (``registry.SAME_GRID``): they compute on the input's grid and are requantized;
* every other op runs in float: a quantized value feeding it goes through one shared
  ``dequantize`` op, and a ``quantize`` op stays where PyTorch quantizes a float value;
* an op whose only activations are integer ids (embedding, a cast of an integer mask to float)
  is quantized onto the grid its readers quantize to, else float; a shape op moving integers
  keeps them;
* quantizers that use fewer codes than their dtype (x86 reduce_range) get an explicit clamp on
  the grid, listed in the notes.
"""
from ..ir import Op, Tensor
from ..circle.vocab import INT_RANGE
from ..ops.registry import SAME_GRID

# integer activations: model inputs of ids or masks (read by embedding, shape ops, casts)
INDEX_DTYPES = ("int64", "int32")


class Grid(object):
    """What one quantize op says about its integers: dtype, qparams and quant_min..quant_max."""
    __slots__ = ("dtype", "qparams", "qmin", "qmax")

    def __init__(self, dtype, qparams, qmin, qmax):
        self.dtype, self.qparams, self.qmin, self.qmax = dtype, qparams, int(qmin), int(qmax)

    @classmethod
    def of(cls, quantize_op):
        out = quantize_op.outputs[0]
        return cls(out.dtype, out.qparams, quantize_op.attrs["quant_min"], quantize_op.attrs["quant_max"])

    def same(self, other):
        return other is not None and self.dtype == other.dtype and self.qparams.same_as(other.qparams) \
            and self.qmin == other.qmin and self.qmax == other.qmax

    def matches(self, t):
        """True when tensor ``t`` already holds integers on this grid."""
        return t.qparams is not None and t.dtype == self.dtype and self.qparams.same_as(t.qparams)


def _is_reader_quantize(op):
    return op.kind == "quantize" and "quant_min" in op.attrs


def fold_qdq(graph, record=None):
    """Fold the reader's quantize/dequantize ops (see the module docstring). ``record``: the
    reader's ``ir.SourceRecord``, whose ``nodes`` then follow the tensors that replace others."""
    users = graph.consumers()
    literal = graph.ops
    graph.ops = []
    outputs = set(id(t) for t in graph.outputs)
    folder = QdqFolder(graph)
    alias = {}   # id(tensor of the reader) -> the tensor that now holds its value
    moved = []   # (quantize output of the reader, the tensor that replaces it)

    def resolve(t):
        while t is not None and id(t) in alias:
            t = alias[id(t)]
        return t

    def folded_grid(t):
        """The grid every reader of ``t`` quantizes it to (through a chain of single clamps), or None."""
        while True:
            readers = users.get(id(t), [])
            if not readers or id(t) in outputs:
                return None
            if all(_is_reader_quantize(u) for u in readers):
                grids = [Grid.of(u) for u in readers]
                return grids[0] if all(grids[0].same(g) for g in grids[1:]) else None
            u = readers[0]
            if not (len(readers) == 1 and u.kind == "hardtanh" and u.inputs[0] is t):
                return None
            t = u.outputs[0]

    for op in literal:
        ins = [resolve(t) for t in op.inputs]
        if _is_reader_quantize(op):
            x = ins[0]
            q = folder.quantize(x, Grid.of(op), x.name + "/quantize")
            alias[id(op.outputs[0])] = q
            moved.append((op.outputs[0], q))
            continue
        if op.kind == "dequantize":
            alias[id(op.outputs[0])] = folder.as_float(ins[0])
            continue
        acts = [t for t in ins if t is not None and not t.is_const]
        out = op.outputs[0]
        if out.dtype in INDEX_DTYPES:
            op.inputs = ins   # a shape op moving integers (an integer input's unsqueeze)
            graph.ops.append(op)
            continue
        if acts and all(a.dtype in INDEX_DTYPES for a in acts) and len(op.outputs) == 1:
            # integer ids only (embedding): the op is a selection from constants, quantized where
            # every reader quantizes its output (its lowering puts the constants on that grid)
            op.inputs = ins
            grid = folded_grid(out)
            if grid is not None:
                out.dtype, out.qparams = grid.dtype, grid.qparams.copy()
            graph.ops.append(op)
            seen = folder.clamp_to_range(out, grid) if grid is not None else out
            if seen is not out:
                alias[id(out)] = seen
            continue
        if len(op.outputs) != 1 or out.qparams is not None or all(a.qparams is None for a in acts):
            op.inputs = ins   # a view on the input's grid, or float from float
            graph.ops.append(op)
            continue
        n = len(acts)
        assert ins[:n] == acts, "%s: activations come first" % op.name
        grid = folded_grid(out) if all(a.qparams is not None for a in acts) else None
        seen = folder.place(op, acts, ins[n:], grid)
        if seen is not out:
            alias[id(out)] = seen
    graph.outputs = [folder.as_float(resolve(t)) for t in graph.outputs]
    graph.prune()
    folder.finish()
    if record is not None:
        _follow(record, moved, resolve, folder.float_of)


def _follow(record, moved, resolve, float_of):
    """The reader's record names each tensor's PyTorch node; carry it over to the tensors that
    replaced the reader's quantize outputs, and name each dequantize by PyTorch's dequantize node
    reading those integers (else by the node of the integers)."""
    nodes = record.nodes
    for old, new in moved:
        if id(old) in nodes:
            nodes[id(new)] = nodes.pop(id(old))
    dq = {}
    for t, node in record.dequantized:
        dq.setdefault(id(resolve(t)), node)
    for key, f in float_of.items():
        node = dq.get(key) or nodes.get(key)
        if node is not None:
            nodes[id(f)] = node
    record.dequantized = []


class QdqFolder(object):
    """The ops ``fold_qdq`` adds, appended to ``graph.ops`` in order: shared dequantize ops,
    quantize ops, requantization and reduce_range clamps. A grid is any object with ``dtype``,
    ``qparams``, ``qmin``, ``qmax`` and ``matches(tensor)`` (``Grid``)."""

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

    def quantize(self, t, grid, name):
        """Activation ``t`` on ``grid``: itself when it already is, else QUANTIZE of its float
        value (a requantization goes through float: exact, and any runtime runs it)."""
        if grid.matches(t):
            return self.clamp_to_range(t, grid)
        f = self.as_float(t)
        q = Tensor(name, None, grid.dtype, grid.qparams.copy())
        self.graph.ops.append(Op("quantize", [f], [q], {}, name))
        return self.clamp_to_range(q, grid)

    def clamp_to_range(self, t, grid):
        """PyTorch clamps to quant_min..quant_max, circle to the dtype's range. Where those differ
        by more than the one code of a symmetric range (x86 reduce_range: 0..127), clamp
        explicitly, on the grid, so that no integer can differ (a clamp commutes with the
        quantizer)."""
        lo, hi = INT_RANGE[grid.dtype]
        need_lo, need_hi = grid.qmin > lo + 1, grid.qmax < hi - 1
        if not (need_lo or need_hi):
            return t
        key = (id(t), grid.qmin, grid.qmax)
        if key not in self.clamped:
            s, zp = float(grid.qparams.scale[0]), int(grid.qparams.zero_point[0])
            attrs = {"min": (grid.qmin - zp) * s if need_lo else float("-inf"),
                     "max": (grid.qmax - zp) * s if need_hi else float("inf")}
            name = t.name + "/quant_range"
            out = Tensor(name, None, t.dtype, t.qparams.copy())
            self.graph.ops.append(Op("hardtanh", [t], [out], attrs, name))
            self.clamped[key] = out
            self.clamped[(id(out), grid.qmin, grid.qmax)] = out
            self.range_clamps.append("%s (%d..%d)" % (t.name, grid.qmin, grid.qmax))
        return self.clamped[key]

    def place(self, op, acts, consts, grid):
        """Append ``op`` (one output, reading activations ``acts`` then ``consts``): quantized onto
        ``grid`` (None: in float on dequantized inputs). Returns the value its readers see (its
        output, or that output requantized onto ``grid``)."""
        out = op.outputs[0]
        if grid is None:
            ins = [self.as_float(a) for a in acts]
            out.dtype, out.qparams = "float32", None
        else:
            ins = list(acts)
            keep = op.kind in SAME_GRID and not grid.matches(acts[0])   # compute on the input's grid
            src = acts[0] if keep else grid
            out.dtype, out.qparams = src.dtype, src.qparams.copy()
        op.inputs = ins + list(consts)
        self.graph.ops.append(op)
        if grid is not None and not grid.matches(out):
            return self.quantize(out, grid, op.name + "/requantize")
        return out

    def finish(self):
        """The note on reduce_range clamps, once every op is placed."""
        if self.range_clamps:
            self.graph.notes.append(
                "%d quantizer(s) use fewer codes than their dtype (x86 reduce_range); PyTorch clamps "
                "to them, so the circle model clamps too (MINIMUM/MAXIMUM on the grid): %s"
                % (len(self.range_clamps), ", ".join(self.range_clamps)))
