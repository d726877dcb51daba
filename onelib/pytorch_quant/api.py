"""Python entry point: ``convert(source, options) -> Conversion``.

Data flows one way: file -> frontend -> source IR -> source passes -> lowering -> circle passes
-> writer -> bytes. torch is imported only by the TorchScript frontend (and by the .pt2 frontend
only when it is handed an in-memory ExportedProgram).
"""
import os

from .errors import ConversionError
# the options of a conversion are declared with the driver's in options.py (one spec)
from .options import PROFILES, ConvertOptions  # noqa: F401  (api.PROFILES, api.ConvertOptions)

__all__ = ["ConvertOptions", "Conversion", "convert", "ConversionError"]


class Conversion(object):
    """What a conversion produced: the circle bytes and notes for the user (and the log)."""

    def __init__(self, circle, graph, notes, source_graph=None, tensor_map=None, hazards=None,
                 source_record=None):
        self.circle = circle
        self.graph = graph              # circle-stage IR that was written
        self.notes = notes
        # luci profile: what onert 0.1.0 / luci-interpreter would get wrong in this circle
        self.hazards = list(hazards or [])
        self.source_graph = source_graph  # source-stage IR (PyTorch names and layout)
        self.tensor_map = tensor_map or {}  # id(source tensor) -> circle tensor (NHWC when 4-D)
        self.source_record = source_record  # ir.SourceRecord: the PyTorch side, for the report

    def save(self, path):
        from .fileutil import write_atomic
        write_atomic(path, self.circle)


def detect_format(path):
    """'torchscript' or 'pt2', from the archive's content (not its extension)."""
    from .frontend.zip_archive import Zip
    with Zip(path) as z:   # a regular readable file, a whole zip: else an error saying which
        names = sorted(z.names)
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names) or \
            any("/models/" in n and n.endswith(".json") for n in names):
        return "pt2"
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith("/data.pkl") for n in names):
        raise ConversionError("%s: a pickled torch.save file (state_dict or whole model) has no graph; "
                              "save the quantized model with torch.jit.trace + torch.jit.save, "
                              "or quantize with PT2E and torch.export.save" % path)
    raise ConversionError("%s: unknown archive layout" % path)


def frontend_services(frontend):
    """What ``frontend`` ("torchscript" or "pt2") may call while reading: the frontends import
    nothing from ops/ or passes/ (shape rules, qparam rules, the generic reading table)."""
    from .frontend import FrontendServices
    from .ops import registry
    from .passes import fold, shapes
    # registry.generic_reads: {PyTorch name: (kind, argument names)} of the kinds read generically
    reads = registry.generic_reads(frontend)
    return FrontendServices(shapes.infer_shapes, shapes.derive_qparams, reads, fold.fold_table(frontend),
                            fold.evaluate)


def _read_pt2(load, *args):
    """The .pt2 reader writes the program as it is; Q/DQ folding and shapes are passes."""
    from .passes import qdq, shapes
    graph, record = load(*args)
    qdq.fold_qdq(graph, record)
    shapes.infer_shapes(graph)
    return graph, record


def load_source_graph(source, options):
    """Any accepted input -> (source-stage IR graph, ir.SourceRecord)."""
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        path = os.fspath(source)
        fmt = detect_format(path)
        if fmt == "pt2":
            from .frontend import pt2
            return _read_pt2(pt2.load_pt2, path, options, frontend_services("pt2"))
        from .frontend import torchscript
        return torchscript.load_torchscript(path, options, frontend_services("torchscript"))
    kind = type(source).__name__
    if kind == "ExportedProgram":
        from .frontend import pt2
        return _read_pt2(pt2.load_exported_program, source, options, frontend_services("pt2"))
    if kind in ("ScriptModule", "RecursiveScriptModule", "TopLevelTracedModule", "TracedModule"):
        from .frontend import torchscript
        return torchscript.from_script_module(source, options, "<ScriptModule>", frontend_services("torchscript"))
    raise ConversionError("cannot convert a %s: give a TorchScript file, a .pt2 file, a "
                          "torch.jit.ScriptModule or an ExportedProgram" % kind)


def convert(source, options=None, progress=None):
    """Convert a quantized PyTorch model to circle bytes.

    ``progress``: optional callable(str) told about each stage (the driver logs it).
    With ``options.keep_graphs = False`` only the bytes and notes are returned (less memory).
    """
    import gc
    # a conversion makes many small objects but few cycles; collecting the oldest generation walks
    # every object torch made at import (~0.1 s each time): collect after the conversion instead
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _convert(source, options or ConvertOptions(), progress)
    finally:
        if gc_was_enabled:
            gc.enable()


def _convert(source, options, progress):
    from . import passes
    from .circle import writer
    from .ops import lower

    keep_graphs = getattr(options, "keep_graphs", True)
    say = progress or (lambda msg: None)
    say("reading %s" % (source if isinstance(source, str) else type(source).__name__))
    graph, record = load_source_graph(source, options)
    if not keep_graphs:   # the fidelity report's handle on the torch module: not needed here
        record = None
    say("source graph: %d ops" % len(graph.ops))
    from . import shape_check
    shape_check.check_input_shapes(graph, options)
    shape_check.check_graph(graph)
    passes.run_source_passes(graph, options)
    ctx = lower.LowerCtx(graph, options)
    cgraph = lower.lower_graph(graph, options, ctx)
    if not keep_graphs:
        graph = ctx = None
    passes.run_circle_passes(cgraph, options)
    say("circle graph: %d ops" % len(cgraph.ops))
    hazards = passes.profiles.onert_hazards(cgraph) if options.profile == "luci" else []
    data = writer.write_circle(cgraph)
    for note in cgraph.notes:
        say("note: " + note)
    if not keep_graphs:
        return Conversion(data, None, list(cgraph.notes), hazards=hazards)
    return Conversion(data, cgraph, list(cgraph.notes), graph, ctx.map, hazards=hazards,
                      source_record=record)
