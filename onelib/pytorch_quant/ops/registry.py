"""The op registry: every source op kind's declaration (``@op`` in ops/declare.py), collected from
the op modules, and the tables derived from them.

Adding an op touches one place: one ``@op("kind", shape=..., reads=..., circle=...)`` on its
lowering function in the op module that lowers it (a new module also goes into ``MODULES``), plus
its test row. The README's op table is generated from the declarations (``python -m
onelib.pytorch_quant.ops.table``; tests/test_op_table.py fails when they drift).
``grep -rn '"conv2d"' onelib/`` finds everything about conv2d.

Derived tables (read-only; callers must not change them):

* ``DECLS``: kind -> OpDecl, in README order
* ``SHAPES``, ``LOWERINGS``, ``QPARAMS``: kind -> shape rule / lowering / qparams rule
* ``FLOAT_CAPABLE``: kinds whose lowering also handles float tensors
* ``SAME_GRID``: kinds whose output is on their input's grid (circle's kernels and PyTorch's)

Generic reading contract (``generic_reads(frontend)``): a kind declared with
``args={frontend: (name, ...)}`` is read without a reader of its own. The table maps each PyTorch
name that frontend reads into the kind (its ``reads``) to ``(kind, argument names)``; the frontend
(given the table by api.py) turns such a node into one IR op of that kind: its tensor arguments,
in the declared order, become the op's inputs, its constant arguments become ``attrs`` under the
declared names; one output, whose qparams the frontend reads as for any op. Frontends import
nothing from ``ops/``: api.py hands them this table.

Import graph (acyclic): declare.py, ctx.py, quant.py <- op modules <- registry.py <- lower.py,
table.py; no op module imports registry.py or lower.py.
"""
from ..errors import ConversionError
from . import activation, conv, conv_extra, elementwise, layout, pad, pool, resize, shape_ops
from .declare import FRONTENDS, DECLARED

# the op modules, in the README's order (each declares its kinds with @op)
MODULES = (elementwise, conv, conv_extra, activation, pool, shape_ops, layout, resize, pad)


def _collect():
    order = dict((m.__name__, i) for i, m in enumerate(MODULES))
    decls = {}
    for d in sorted(DECLARED, key=lambda d: (order.get(d.module, len(order)), d.lower.__code__.co_firstlineno,
                                             -d.seq)):
        assert d.module in order, "%s is declared in %s, which is not in registry.MODULES" % (d.kind, d.module)
        assert d.kind not in decls, "two declarations of %s" % d.kind
        decls[d.kind] = d
    return decls


DECLS = _collect()
SHAPES = dict((k, d.shape) for k, d in DECLS.items())
LOWERINGS = dict((k, d.lower) for k, d in DECLS.items())
QPARAMS = dict((k, d.qparams) for k, d in DECLS.items() if d.qparams is not None)
FLOAT_CAPABLE = frozenset(k for k, d in DECLS.items() if d.float_ok)
SAME_GRID = frozenset(k for k, d in DECLS.items() if d.same_grid)


def reads(frontend):
    """{PyTorch name: kind} for every name ``frontend`` reads into a declared kind."""
    assert frontend in FRONTENDS, frontend
    out = {}
    for k, d in DECLS.items():
        for name in d.reads[frontend]:
            out.setdefault(name, []).append(k)
    return out


def generic_reads(frontend):
    """{PyTorch name: (kind, argument names)} for the kinds ``frontend`` reads generically (see
    the module docstring); empty while no kind is declared with ``args``."""
    assert frontend in FRONTENDS, frontend
    out = {}
    for k, d in DECLS.items():
        if frontend in d.args:
            for name in d.reads[frontend]:
                assert name not in out, "%s is read generically as both %s and %s" % (name, out[name][0], k)
                out[name] = (k, tuple(d.args[frontend]))
    return out


def _load_all():
    """Kept for callers of the old lazy registry: the tables are filled when this module loads."""


def derive_qparams(op):
    fn = QPARAMS.get(op.kind)
    if fn is not None:
        op.outputs[0].qparams = fn(op)


def infer_shapes(graph):
    """Fill every op output's shape from its inputs (in graph order). Unknown inputs stop early."""
    for op in graph.ops:
        if any(t is not None and t.shape is None for t in op.inputs):
            return
        if op.outputs[0].shape is not None and op.kind not in SHAPES:
            continue
        fn = SHAPES.get(op.kind)
        if fn is None:
            raise ConversionError("internal: no shape rule for %s" % op.kind)
        try:
            out = fn(op)
        except ConversionError:
            raise
        except Exception as e:
            raise ConversionError("%s: %s (%s): cannot infer the output shape from inputs %s: %s"
                                  % (graph.source, op.name, op.kind,
                                     [t.shape for t in op.inputs if t is not None], e))
        if out and isinstance(out[0], (tuple, list)):   # multi-output ops (split) give one shape each
            for t, s in zip(op.outputs, out):
                t.shape = tuple(int(v) for v in s)
        else:
            op.outputs[0].shape = tuple(int(s) for s in out)
