"""TorchScript archives of eager- or FX-quantized models -> source-stage IR.

The archive is loaded, never run. A traced model's forward is inlined (a copy: the module is not
touched) and its ``prim::GetAttr`` chains are resolved against the module itself: numbers and
tensors become graph constants, packed weights are read from the module's attributes, and the
passes ``torch.jit.freeze`` would run (dead code, common subexpressions, constant propagation)
run on the copy, so the walk sees what it would see after freeze without freeze's cost (it clones
the module and repacks every weight: about as long as loading the archive). Scripted models
(control flow that folds once shapes are known) and anything the fast path cannot resolve are
frozen and walked as before. Inlined nodes keep the module hierarchy (``getModuleHierarchy``),
which gives tensor names the user knows; for FX-quantized models, whose generated forward calls
every leaf module from the top, ts_fxpaths.py recovers the full module paths.
The walker is ts_walk.py; each TorchScript op kind maps to one reader function (ts_ops.py,
ts_ops_layout.py) that turns the node into one source op (see ``ops/`` for what each means).
"""
from ..errors import ConversionError
from ..ir import SourceRecord
from . import ts_ops, ts_ops_attention, ts_ops_layout  # noqa: F401  (importing the readers registers them)
from .ts_fxpaths import fx_module_paths
from .ts_walk import READERS, _Walker, _qkey  # noqa: F401  (READERS: TorchScript kind -> reader)


def load_torchscript(path, options, services):
    """A TorchScript archive -> (source-stage graph, SourceRecord). ``services``: a
    ``frontend.FrontendServices`` (api.py makes it)."""
    from .ts_archive import inspect_archive
    import torch
    # one open file for the check and the load (an open file, not the name, also because torch's
    # C++ side needs names it can encode as UTF-8)
    with open(path, "rb") as f:
        inspect_archive(f, path)   # before torch.jit.load runs any of the archive's code
        f.seek(0)
        try:
            module = torch.jit.load(f, map_location="cpu")
        except Exception as e:  # torch's own message says what is wrong with the archive
            raise ConversionError("%s: cannot load as TorchScript: %s" % (path, str(e).strip().splitlines()[0]))
    return from_script_module(module, options, path, services)


def from_script_module(module, options, source, services):
    import torch
    module = module.eval()
    names = _qfunctional_names(module)
    # the walk calls a few torch kernels (unpack, int_repr) that copy memory: more threads only
    # spin (on a busy machine they cost more CPU time than the copies themselves)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        found = _walk_unfrozen(module, options, source, names, services)
    finally:
        torch.set_num_threads(threads)
    if found is not None:
        return found   # (graph, record)
    try:
        frozen = torch.jit.freeze(module)
    except Exception as e:
        raise ConversionError("%s: torch.jit.freeze failed (%s)" % (source, str(e).strip().splitlines()[0]))
    walker = _Walker(source, options, names, services, paths=fx_module_paths(module, frozen.graph))
    graph = walker.walk(frozen.graph)
    # kept in memory only, for the fidelity report: which TorchScript value each tensor is
    return graph, SourceRecord("torchscript", module=frozen, values=walker.origin)


# What torch.jit.freeze runs on the inlined graph once the attributes are constants
# (freeze_module.cpp: runOptimization without loop unrolling); the fast path runs the same passes so
# that it walks the same nodes (duplicates merged, dead code gone, constant arithmetic folded).
_FREEZE_PASSES = ("_jit_pass_dce", "_jit_pass_cse", "_jit_pass_peephole", "_jit_pass_constant_propagation",
                  "_jit_pass_constant_pooling", "_jit_pass_cse")
# nodes that need freeze (scripted control flow folds there) or that the fast path does not resolve
_NEEDS_FREEZE = frozenset(["prim::If", "prim::Loop", "prim::SetAttr", "prim::CallMethod", "prim::CallFunction"])


class _InlinedModule(object):
    """What the fidelity report uses of the walked module without freezing it: the walked graph
    (the inlined copy of forward, whose first input is the module) and the module to run it on."""

    def __init__(self, module, graph):
        self._module = module
        self._c = module._c
        self.graph = graph

    def __call__(self, *args):
        return self._module(*args)


def _walk_unfrozen(module, options, source, names, services):
    """The fast path: walk an inlined copy of forward and read the attributes (packed weights,
    qparam tensors) from the module itself. ``torch.jit.freeze`` costs about as much as loading
    the archive (it clones the module, repacking every weight). Returns None when the graph needs
    freeze (scripted control flow, attributes it cannot resolve) or the walk fails: the caller then
    freezes and walks as before, so errors read the same."""
    import torch
    try:
        g = module.forward.graph.copy()
        torch._C._jit_pass_inline(g)
        objects = _inline_attributes(g, module)
        if objects is None:
            return None
        for p in _FREEZE_PASSES:
            getattr(torch._C, p)(g)
    except Exception:
        return None
    for node in g.nodes():
        if node.kind() in _NEEDS_FREEZE or len(list(node.blocks())):
            return None
        if node.kind() == "prim::GetAttr" and node.output().unique() not in objects:
            return None
    walker = _Walker(source, options, names, services, objects, paths=fx_module_paths(module, g))
    try:
        graph = walker.walk(g)
    except Exception:
        return None
    return graph, SourceRecord("torchscript", module=_InlinedModule(module, g), values=walker.origin)


def _inline_attributes(g, module):
    """Resolve ``prim::GetAttr`` chains against ``module``, as freeze would: numbers, strings and
    tensors become constants of the graph (so constant propagation folds what it folds after
    freeze); submodules stay GetAttr; TorchBind objects (packed weights) cannot be graph constants
    here, so they are returned: {GetAttr output unique -> object} (None: something unresolvable)."""
    import torch
    owners = {next(iter(g.inputs())).unique(): module}
    objects = {}
    for node in list(g.nodes()):
        if node.kind() != "prim::GetAttr":
            continue
        owner = owners.get(node.input().unique())
        if owner is None:
            return None
        value = getattr(owner, node.s("name"))
        out = node.output()
        if isinstance(value, torch.jit.ScriptModule):
            owners[out.unique()] = value
            objects[out.unique()] = None
        elif isinstance(value, torch.ScriptObject):
            objects[out.unique()] = value
        elif value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
            if isinstance(value, torch.Tensor) and value.requires_grad:
                value = value.detach()   # a Parameter (quantized batch_norm2d's weight); freeze does the same
            const = g.insertConstant(value)
            const.node().moveBefore(node)
            out.replaceAllUsesWith(const)
        else:
            return None
    return objects


def _qfunctional_names(module):
    """FloatFunctional ops (add, cat, ...) leave no module on the inlined node; in the unfrozen
    graph each such op is followed by a call to ``<path>.activation_post_process``. Map the op's
    literal output qparams to that path so the tensor gets the user's name (e.g. ``ff_add``)."""
    found = {}

    def visit(mod, prefix):
        try:
            graph = mod.graph
        except Exception:
            return
        attr_path = {}
        nodes = list(graph.nodes())
        for n in nodes:
            if n.kind() == "prim::GetAttr":
                parent = attr_path.get(n.input().unique(), prefix)
                attr_path[n.output().unique()] = (parent + "." if parent else "") + n.s("name")
        for i, n in enumerate(nodes):
            if n.kind().startswith("quantized::") and i + 1 < len(nodes):
                nxt = nodes[i + 1]
                if nxt.kind() == "prim::CallMethod":
                    p = attr_path.get(list(nxt.inputs())[0].unique(), "")
                    if p.endswith(".activation_post_process"):
                        key = _qkey(n)
                        if key is not None:
                            found.setdefault(key, p[: -len(".activation_post_process")])
        for name, child in mod.named_children():
            visit(child, (prefix + "." if prefix else "") + name)

    visit(module, "")
    return found
