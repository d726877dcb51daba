"""The PyTorch side of the fidelity report: run the model the frontend read and keep the value of
every source tensor PyTorch computes (see the package's doc). Only this module reads torch."""
import os

from .common import _FidelityError, _INT_RANGE, _Value


def _value_from_torch(t):
    import numpy as np
    import torch
    if t.is_quantized:
        if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            return _Value(t.int_repr().numpy().astype(np.int64), float(t.q_scale()), int(t.q_zero_point()))
        return _Value(t.dequantize().numpy().astype(np.float32))
    return _Value(t.detach().numpy().copy())


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
    from .. import api
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

