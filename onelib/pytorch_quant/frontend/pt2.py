"""torch.export ``.pt2`` archives of PT2E-quantized models -> source-stage IR.

The recipe a user follows (torch 2.13, torchao 0.18)::

    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, convert_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)

    model = MyNet().eval()
    example = (torch.randn(1, 3, 224, 224),)            # the batch size is fixed here
    gm = torch.export.export(model, example, strict=True).module()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(gm, quantizer)
    for batch in calibration_batches:                   # same shape as ``example``
        prepared(batch)
    quantized = convert_pt2e(prepared)                  # fold_quantize=False is read too
    ep = torch.export.export(quantized, example)
    torch.export.save(ep, "model.pt2")

and then ``one-import-pytorch-quant -i model.pt2 -o model.circle`` (or, in Python,
``convert("model.pt2")`` / ``convert(ep)``).

* Export with ``strict=True`` when quantizing for XNNPACK: the default non-strict export leaves
  ``cat`` and the pooling after it unannotated, so they stay float without any error.
* X86InductorQuantizer and ArmInductorQuantizer quantize only the inputs of conv/linear; the rest
  of the graph runs in float in PyTorch and stays float in circle (DEQUANTIZE/QUANTIZE around it,
  listed in the notes; ``--strict`` refuses such graphs).
* A quantizer with int16 activations (A16W8) gives an S16 model; XNNPACK's int8 activations
  become U8 by the exact +128 shift (``passes.source_passes.dtype_policy``).
* FX users: ``_convert_to_reference_decomposed_fx(prepared_fx_model)`` then ``torch.export``
  gives the same Q/DQ form.

How the archive is read: with ``zipfile``, ``json`` and ``numpy`` only. torch is not imported
(except to save an in-memory ExportedProgram first), nothing is unpickled (entries stored with
``use_pickle: true`` are refused), and ``data/sample_inputs`` is never opened. The graph is
``models/<name>.json`` (schema major 8); tensors are raw little-endian storages described by
``data/weights/<name>_weights_config.json`` and ``data/constants/<name>_constants_config.json``.

How the graph is read: a PT2E graph is a float graph with ``quantize_per_tensor`` /
``dequantize_per_tensor`` pairs on the activations and ``dequantize_per_channel`` on integer
weights. Each aten op maps to one reader function in ``READERS`` that emits one source op (see
``ops/__init__.py``). An op is emitted quantized when all its activation inputs come from a
dequantize and every reader of its output quantizes it the same way (directly, or after a
relu/hardtanh/clamp, which commutes with quantization); it takes that quantizer's qparams.
Every other op runs in float, as it does in PyTorch: a quantized value feeding it goes through a
``dequantize`` op, and a ``quantize`` op is emitted where PyTorch quantizes a float value.
"""
import json
import math
import os
import re

import numpy as np

from ..errors import ConversionError, UnsupportedOpsError
from ..ir import QUANT_INT_DTYPES, Graph, Op, QParams, SourceRecord, Tensor
from . import pt2_archive, zip_archive

# schema majors of models/*.json this reader understands (torch/_export/serde/schema.py)
KNOWN_SCHEMA_MAJORS = (8,)

# torch/_export/serde/schema.py ScalarType codes -> numpy dtype names
SCALAR_TYPES = {1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16",
                7: "float32", 8: "float64", 12: "bool", 13: "bfloat16"}

READERS = {}


def reader(*targets):
    """Register a reader for aten / quantized_decomposed ops, named without ``torch.ops.``."""
    def deco(fn):
        for t in targets:
            READERS[t] = fn
        return fn
    return deco


# ops that only check shapes or guards at run time: no value, nothing to convert
def _is_check(target):
    return target.endswith("_guards_fn") or "._assert" in target or ".sym_constrain_range" in target


# ops that return their input unchanged in an inference graph
IDENTITY = {"aten.clone.default", "aten.contiguous.default", "aten.alias.default",
            "aten.detach.default", "aten.detach_.default", "aten.lift_fresh_copy.default",
            "aten.dropout.default", "aten.dropout_.default", "aten.feature_dropout.default",
            "aten.alpha_dropout.default"}
# clamps commute with a quantizer: q(clamp(v)) == clamp(q(v)) on the quantizer's grid
CLAMPS = {"aten.relu.default", "aten.relu_.default", "aten.relu6.default", "aten.hardtanh.default",
          "aten.hardtanh_.default", "aten.clamp.default", "aten.clamp_.default"}
QUANTIZE_PER_TENSOR = {"quantized_decomposed.quantize_per_tensor.default",
                       "quantized_decomposed.quantize_per_tensor.tensor",
                       "quantized_decomposed.quantize_per_tensor.tensor2"}


def load_pt2(path, options, services):
    """A ``torch.export.save`` archive -> (source-stage graph, SourceRecord); torch is not
    imported. ``services``: a ``frontend.FrontendServices`` (api.py makes it)."""
    return _load(path, options, path, services)


def load_exported_program(ep, options, services):
    """An in-memory ExportedProgram: saved with ``torch.export.save`` and read like a file, so
    both ways of calling share one reader."""
    import tempfile

    import torch
    with tempfile.TemporaryDirectory(prefix="pt2_import_") as tmp:
        path = os.path.join(tmp, "program.pt2")
        try:
            torch.export.save(ep, path)
        except Exception as e:
            raise ConversionError("<ExportedProgram>: torch.export.save failed: %s" % _first_line(e))
        return _load(path, options, "<ExportedProgram>", services)


def _load(path, options, source, services):
    archive = _Archive(path, source)
    try:
        model = archive.model_json()
        walker = _Walker(archive, model, options, source, services)
        return walker.walk()
    except RecursionError:   # the safety net for a structure deeper than any check foresaw
        raise ConversionError("%s: the program nests too deeply to read" % source)
    except (TypeError, KeyError, ValueError, AttributeError, IndexError, OverflowError,
            ArithmeticError) as e:   # a value of a type the schema check did not foresee
        raise ConversionError("%s: malformed program (%s: %s)" % (source, type(e).__name__, _first_line(e)))
    finally:
        archive.close()


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ------------------------------------------------------------------------------- the archive
class _Archive(object):
    """The parts of a ``.pt2`` zip the importer reads: one model's graph JSON and raw tensors."""

    def __init__(self, path, source):
        self.source = source
        self.zip = zip_archive.Zip(path, source, ".pt2 archive")   # bounded reads, clear errors
        names = sorted(self.zip.names)
        self.names = set(names)
        self.materialised = 0   # bytes of tensors made so far, within the archive's budget
        self.root = self._find_root(names)
        models = sorted(n[len(self.root) + len("models/"):-len(".json")] for n in names
                        if n.startswith(self.root + "models/") and n.endswith(".json")
                        and "/" not in n[len(self.root) + len("models/"):])
        if not models:
            raise ConversionError("%s: no models/*.json in the archive: not a torch.export .pt2 "
                                  "(AOTInductor packages hold compiled code, not a graph)" % source)
        if len(models) > 1 and "model" not in models:
            raise ConversionError("%s: the archive holds %d programs (%s); save one ExportedProgram "
                                  "per file" % (source, len(models), ", ".join(models)))
        self.model = "model" if "model" in models else models[0]
        order = self._read_text("byteorder", default="little").strip()
        if order not in ("little", "big"):
            raise ConversionError("%s: byteorder '%s' is neither little nor big" % (source, order))
        self.byteorder = "<" if order == "little" else ">"
        self._configs = {}

    def close(self):
        self.zip.close()

    def _find_root(self, names):
        for n in names:
            if n == "archive_format" or n.endswith("/archive_format"):
                return n[: -len("archive_format")]
        for n in names:
            i = n.find("models/")
            if i >= 0 and n.endswith(".json"):
                return n[:i]
        return ""

    def _read_text(self, rel, default=None):
        name = self.root + rel
        if name not in self.names:
            if default is not None:
                return default
            raise ConversionError("%s: the archive has no %s" % (self.source, rel))
        data = self.zip.read(name)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConversionError("%s: %s is not UTF-8 text (%s)" % (self.source, name, e))

    def _read_json(self, rel):
        if self.root + rel not in self.names:
            raise ConversionError("%s: the archive has no %s" % (self.source, rel))
        return self.zip.read_json(self.root + rel)

    def model_json(self):
        rel = "models/%s.json" % self.model
        doc = self._read_json(rel)
        if not isinstance(doc, dict):
            raise ConversionError("%s: %s%s is not a JSON object" % (self.source, self.root, rel))
        version = doc.get("schema_version") or {}
        if not isinstance(version, dict):
            version = {}
        major, minor = version.get("major"), version.get("minor")
        if major not in KNOWN_SCHEMA_MAJORS:
            raise ConversionError(
                "%s: %s has torch.export schema version %s.%s (written by torch %s); this importer "
                "reads schema major %s (torch 2.x). Save the program with a torch whose "
                "torch._export.serde.schema.SCHEMA_VERSION major is one of those"
                % (self.source, rel, major, minor, doc.get("torch_version", "?"),
                   " or ".join(str(m) for m in KNOWN_SCHEMA_MAJORS)))
        if "graph_module" not in doc:
            raise ConversionError("%s: %s holds no graph_module" % (self.source, rel))
        return pt2_archive.validate_model(doc, "%s: %s%s" % (self.source, self.root, rel))

    def _config(self, kind):
        """kind 'weights' or 'constants' -> {fqn: PayloadMeta dict}."""
        if kind not in self._configs:
            rel = "data/%s/%s_%s_config.json" % (kind, self.model, kind)
            legacy = "data/%s/%s.pt" % (kind, self.model)
            if self.root + rel in self.names:
                where = "%s: %s%s" % (self.source, self.root, rel)
                self._configs[kind] = (rel, pt2_archive.validate_config(self._read_json(rel), where))
            elif self.root + legacy in self.names:
                raise ConversionError("%s: the archive keeps its %s in the legacy pickled file %s; "
                                      "this importer never unpickles: save the program again with "
                                      "torch.export.save from torch >= 2.7" % (self.source, kind, legacy))
            else:
                self._configs[kind] = (rel, {})
        return self._configs[kind]

    def refuse_pickled(self, fqn, kinds=("weights", "constants")):
        """Fail now, with the reason, if ``fqn`` is stored pickled (checked before any op is
        read, so a torchao subclass model is told why rather than which ops are missing)."""
        for kind in kinds:
            rel, config = self._config(kind)
            meta = config.get(fqn)
            if meta is not None:
                if meta.get("use_pickle"):
                    self._load_entry(kind, rel, fqn, meta)  # raises with the explanation
                return

    def tensor(self, fqn, kinds=("weights", "constants")):
        """The tensor stored under state-dict / constant name ``fqn`` as a numpy array."""
        for kind in kinds:
            rel, config = self._config(kind)
            if fqn in config:
                return self._load_entry(kind, rel, fqn, config[fqn])
        raise ConversionError("%s: the graph reads '%s', which the archive does not store"
                              % (self.source, fqn))

    def _load_entry(self, kind, rel, fqn, meta):
        if meta.get("use_pickle"):
            raise ConversionError(
                "%s: %s entry '%s' (file data/%s/%s) is stored with use_pickle: true, i.e. as a "
                "pickled tensor subclass (torchao quantize_ writes these); this importer never "
                "unpickles. Quantize with PT2E (prepare_pt2e/convert_pt2e) so that weights are "
                "plain tensors" % (self.source, rel, fqn, kind, meta.get("path_name")))
        tm = meta.get("tensor_meta") or {}
        code = tm.get("dtype")
        dtype = SCALAR_TYPES.get(code)
        if dtype is None:
            raise ConversionError("%s: %s entry '%s' has tensor dtype code %r, which has no numpy "
                                  "equivalent here" % (self.source, rel, fqn, code))
        sizes = [_static_int(s, "size of '%s'" % fqn, self.source) for s in tm.get("sizes", [])]
        strides = [_static_int(s, "stride of '%s'" % fqn, self.source) for s in tm.get("strides", [])]
        offset = _static_int(tm.get("storage_offset", {"as_int": 0}), "offset of '%s'" % fqn, self.source)
        member = self.root + "data/%s/%s" % (kind, meta.get("path_name"))
        if member not in self.names:
            raise ConversionError("%s: %s entry '%s' points to %s, which is not in the archive"
                                  % (self.source, rel, fqn, member))
        numel = 1
        for n in sizes:
            numel *= n
        itemsize = np.dtype("uint16" if dtype == "bfloat16" else dtype).itemsize
        stored = self.zip.declared_size(member)
        # a strided view may read more elements than its storage holds (stride 0): what is made
        # must fit the archive's budget, checked before anything is read or made
        if numel * itemsize > max(stored, 0) + self.zip.budget - self.materialised:
            raise ConversionError("%s: %s entry '%s' (sizes %s) would take %d bytes from the %d-byte "
                                  "storage %s; more than this %d-byte archive may make"
                                  % (self.source, rel, fqn, sizes, numel * itemsize, stored, member,
                                     self.zip.size))
        self.materialised += numel * itemsize
        raw = self.zip.read(member)
        if not raw:  # torch writes no bytes for an empty (or all-fake) storage: zeros
            return np.zeros(sizes, dtype="float32" if dtype == "bfloat16" else dtype)
        store = "uint16" if dtype == "bfloat16" else dtype
        itemsize = np.dtype(store).itemsize
        if len(raw) % itemsize:
            raise ConversionError("%s: %s holds %d bytes, not a whole number of %s"
                                  % (self.source, member, len(raw), dtype))
        flat = np.frombuffer(raw, dtype=np.dtype(store).newbyteorder(self.byteorder))
        if numel:
            last = offset + sum((n - 1) * s for n, s in zip(sizes, strides))
            if offset < 0 or last >= flat.size or any(s < 0 for s in strides):
                raise ConversionError("%s: '%s' (sizes %s, strides %s, offset %d) lies outside its "
                                      "%d-element storage %s" % (self.source, fqn, sizes, strides,
                                                                 offset, flat.size, member))
            view = np.lib.stride_tricks.as_strided(flat[offset:], shape=sizes,
                                                   strides=[s * itemsize for s in strides])
            arr = np.array(view, dtype=np.dtype(store))   # native byte order, own memory
        else:
            arr = np.zeros(sizes, dtype=store)
        if dtype == "bfloat16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr


def _check_given_shape(source, name, sizes, shape):
    """A shape the user gave for a program input must keep its rank and its static dimensions."""
    static = [s.get("as_int") if isinstance(s, dict) else None for s in sizes]
    if len(shape) != len(static) or any(d is not None and d != g for d, g in zip(static, shape)) \
            or any(g <= 0 for g in shape):
        raise ConversionError("%s: --input_shapes gives %s for input '%s', but the program has %s"
                              % (source, ",".join(str(g) for g in shape), name,
                                 ",".join("?" if d is None else str(d) for d in static) or "a scalar"))


def _static_int(v, what, source):
    if isinstance(v, int):
        return v
    if isinstance(v, dict) and "as_int" in v:
        return int(v["as_int"])
    raise ConversionError("%s: %s is symbolic (%s); export with static shapes or give "
                          "--input_shapes" % (source, what, json.dumps(v)[:80]))


# ------------------------------------------------------------------------------- graph JSON
class _Ref(object):
    """A reference to a tensor value of the graph, by its name in model.json."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "%" + self.name


class _Dtype(object):
    """A torch ScalarType argument (as_scalar_type)."""
    __slots__ = ("code",)

    def __init__(self, code):
        self.code = code

    @property
    def name(self):
        return SCALAR_TYPES.get(self.code)


class _Sym(object):
    """A symbolic int/float/bool argument: the value is only known at run time."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class _Opaque(object):
    """An argument kind no reader needs (device, layout, graph, custom object...)."""
    __slots__ = ("kind",)

    def __init__(self, kind):
        self.kind = kind


def _decode(arg):
    """One serialized Argument union -> a Python value (_Ref for tensors)."""
    if not isinstance(arg, dict) or len(arg) != 1:
        return _Opaque(str(arg)[:40])
    (kind, v), = arg.items()
    if kind == "as_none":
        return None
    if kind == "as_tensor":
        return _Ref(v["name"])
    if kind == "as_tensors":
        return [_Ref(t["name"]) for t in v]
    if kind == "as_optional_tensors":
        return [_Ref(t["as_tensor"]["name"]) if "as_tensor" in t else None for t in v]
    if kind in ("as_int", "as_float", "as_bool", "as_string", "as_ints", "as_floats", "as_bools",
                "as_strings"):
        return v
    if kind == "as_scalar_type":
        return _Dtype(v)
    if kind in ("as_sym_int", "as_sym_float", "as_sym_bool"):
        return _sym(v)
    if kind in ("as_sym_ints", "as_sym_floats", "as_sym_bools"):
        return [_sym(x) for x in v]
    return _Opaque(kind)


def _sym(v):
    (k, x), = v.items()
    if k == "as_name":
        return _Sym(x)
    return x


class _Node(object):
    __slots__ = ("name", "target", "args", "outputs", "meta")

    def __init__(self, raw):
        self.target = raw["target"]
        if self.target.startswith("torch.ops."):
            self.target = self.target[len("torch.ops."):]
        self.args = {}
        for i, a in enumerate(raw.get("inputs", [])):
            self.args[a.get("name") or "arg%d" % i] = _decode(a.get("arg"))
        self.outputs = []
        for o in raw.get("outputs", []):
            v = _decode(o)
            if isinstance(v, _Ref):
                self.outputs.append(v.name)
            elif isinstance(v, list):
                self.outputs.extend(r.name for r in v if isinstance(r, _Ref))
        self.meta = raw.get("metadata") or {}
        self.name = raw.get("name") or (self.outputs[0] if self.outputs else self.target)

    @property
    def output(self):
        return self.outputs[0] if self.outputs else None

    def refs(self):
        for v in self.args.values():
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, _Ref):
                    yield x.name


def _split_top(text, sep):
    """Split on ``sep`` outside brackets (module paths may hold ``[0]`` or ``['a,b']``)."""
    out, start, depth = [], 0, 0
    for i, c in enumerate(text):
        if c in "[(":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


def _clean_path(path):
    """``L['self'].features[3].conv`` / ``L__self__.features.3`` -> ``features.3.conv``."""
    path = re.sub(r"^(L\['self'\]|L__self__|self)\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\[['\"]([^'\"]*)['\"]\]", r".\1", path)
    path = re.sub(r"^getattr\(.*?,\s*['\"]([^'\"]*)['\"]\)", r"\1", path)
    return path.strip(".")


def _module_of(node):
    """(module path, module type) of the innermost module that called ``node``, or ('', '')."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return "", ""
    last = _split_top(stack, ";")[-1]
    parts = _split_top(last, ",")
    if len(parts) != 3:
        return "", ""
    return _clean_path(parts[1]), parts[2]


_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def _op_name(node):
    """The name a user knows: the module path for a torch.nn leaf module (``features.0.0``),
    else the calling module's path and the graph's node name (``features.3/add_1``)."""
    path, mtype = _module_of(node)
    leaf = (mtype.startswith("torch.nn.modules.") or mtype.startswith("torch.ao.nn.")) and \
        not mtype.endswith(_CONTAINERS)
    if path and leaf:
        return path
    return "%s/%s" % (path, node.name) if path else node.name


# ------------------------------------------------------------------------------- the walker
class _QSpec(object):
    """What one quantize/dequantize op says about its integers."""
    __slots__ = ("dtype", "qparams", "qmin", "qmax")

    def __init__(self, dtype, qparams, qmin, qmax):
        self.dtype, self.qparams, self.qmin, self.qmax = dtype, qparams, int(qmin), int(qmax)

    def same(self, other):
        return other is not None and self.dtype == other.dtype and self.qparams.same_as(other.qparams) \
            and self.qmin == other.qmin and self.qmax == other.qmax

    def matches(self, t):
        """True when tensor ``t`` already holds integers on this grid."""
        return t.qparams is not None and t.dtype == self.dtype and self.qparams.same_as(t.qparams)


class _QInts(object):
    """Integers a quantize op computed from a constant (``convert_pt2e(fold_quantize=False)``)."""

    def __init__(self, data, spec):
        self.data, self.spec = data, spec


class _Unsupported(Exception):
    """A known op used in a way we do not convert (the reason is listed with the op)."""


_OUTPUT = object()   # a graph output, as a "user" of a value


class _Walker(object):
    def __init__(self, archive, doc, options, source, services):
        self.archive = archive
        self.services = services
        self.options = options
        self.source = source
        gm = doc["graph_module"]
        self.jgraph = gm["graph"]
        self.signature = gm.get("signature") or {}
        self.nodes = [_Node(n) for n in self.jgraph.get("nodes", [])]
        self.graph = Graph(source=source)
        self.values = {}       # model.json tensor name -> Tensor | _QInts | None (unconvertible)
        self.lazy = {}         # placeholder name -> state-dict / constant name, read on first use
        self.unsupported = []  # (name, reason)
        # where quantize/dequantize ops land (passes/qdq.py): shared dequantize ops, requantization
        self.qdq = services.qdq(self.graph)
        self.alias = {}        # output of an identity op -> its input
        self.users = {}        # value name -> [node or _OUTPUT]
        self.outputs = []      # names of the user outputs
        # for the fidelity report only (SourceRecord.nodes): id(Tensor) -> name of the graph node
        # whose value it holds (a quantize node for integer codes, else the float node)
        self.node_of = {}
        self.dq_node = {}      # id(quantized Tensor) -> a dequantize node reading its integers

    # -- setup -------------------------------------------------------------------------------
    def _read_signature(self):
        tvals = self.jgraph.get("tensor_values", {})
        shapes = self.options.input_shapes or []
        n_user = 0
        for spec in self.signature.get("input_specs", []):
            (kind, v), = spec.items()
            if kind == "user_input":
                arg = _decode(v["arg"])
                if not isinstance(arg, _Ref):
                    raise ConversionError("%s: a model input is not a tensor (%s); export with tensor "
                                          "inputs only" % (self.source, type(arg).__name__))
                meta = tvals.get(arg.name, {})
                dtype = SCALAR_TYPES.get(meta.get("dtype"), "?")
                if dtype != "float32":
                    raise ConversionError("%s: input '%s' is %s; a PT2E model takes float32 inputs"
                                          % (self.source, arg.name, dtype))
                sizes = meta.get("sizes", [])
                if n_user < len(shapes) and shapes[n_user]:
                    shape = tuple(int(s) for s in shapes[n_user])   # a dynamic dim, pinned by the user
                    _check_given_shape(self.source, arg.name, sizes, shape)
                else:
                    shape = tuple(_static_int(s, "dimension of input '%s'" % arg.name, self.source)
                                  for s in sizes)
                t = Tensor(arg.name, shape, "float32")
                self.node_of[id(t)] = arg.name
                self.graph.inputs.append(t)
                self.values[arg.name] = t
                n_user += 1
            elif kind in ("parameter", "buffer", "tensor_constant"):
                key = {"parameter": "parameter_name", "buffer": "buffer_name",
                       "tensor_constant": "tensor_constant_name"}[kind]
                self.lazy[v["arg"]["name"]] = v[key]
            elif kind == "constant_input":
                self.values[v["name"]] = _decode(v["value"])
            else:  # custom_obj, token: nothing a quantized CNN needs; fail where read
                name = v.get("arg", {}).get("name") if isinstance(v.get("arg"), dict) else None
                if name:
                    self.lazy[name] = None
        if len(shapes) > n_user:
            raise ConversionError("%s: %d input shapes given, but the program has %d input%s"
                                  % (self.source, len(shapes), n_user, "" if n_user == 1 else "s"))
        for spec in self.signature.get("output_specs", []):
            (kind, v), = spec.items()
            if kind != "user_output":
                raise ConversionError("%s: the program has a '%s' output (it mutates state); export "
                                      "the model in eval mode without in-place buffer updates"
                                      % (self.source, kind))
            arg = _decode(v["arg"])
            if not isinstance(arg, _Ref):
                raise ConversionError("%s: the model returns a non-tensor value" % self.source)
            self.outputs.append(arg.name)

    def _index_uses(self):
        """Identity ops become aliases; every value learns who reads it (through aliases)."""
        for node in self.nodes:
            if (node.target in IDENTITY and self._identity_ok(node)) or self._full_slice(node):
                src = node.args.get("self", node.args.get("input"))
                if isinstance(src, _Ref) and node.output:
                    self.alias[node.output] = self.resolve(src.name)
        for node in self.nodes:
            if node.output in self.alias or _is_check(node.target):
                continue
            for r in node.refs():
                self.users.setdefault(self.resolve(r), []).append(node)
        for o in self.outputs:
            self.users.setdefault(self.resolve(o), []).append(_OUTPUT)

    @staticmethod
    def _identity_ok(node):
        return not (node.target.startswith("aten.dropout") or "_dropout" in node.target) or \
            not node.args.get("train", False)

    def _full_slice(self, node):
        """``x[:, 0:n]`` over the whole axis with step 1 returns ``x`` (an alias, so that the op
        before it still folds into the quantizer after it)."""
        if node.target != "aten.slice.Tensor":
            return False
        try:
            bounds = _slice_bounds(self, node)
        except (_Unsupported, ConversionError, TypeError, ValueError, KeyError, IndexError,
                AttributeError, ArithmeticError):   # the reader says why, naming the node
            return False
        return bounds[1] == 0 and bounds[2] == bounds[3] and bounds[4] == 1

    def resolve(self, name):
        while name in self.alias:
            name = self.alias[name]
        return name

    # -- walk --------------------------------------------------------------------------------
    def walk(self):
        self._read_signature()
        self._index_uses()
        for name, fqn in self.lazy.items():
            if fqn is not None and name in self.users:
                self.archive.refuse_pickled(fqn)
        for node in self.nodes:
            self.visit(node)
        if self.unsupported:
            raise UnsupportedOpsError(self.source, self.unsupported)
        for name in self.outputs:
            v = self.values.get(self.resolve(name))
            if not isinstance(v, Tensor) or v.is_const:
                raise ConversionError("%s: output '%s' is not computed from the inputs" % (self.source, name))
            self.graph.outputs.append(self.as_float(v))
        self.graph.prune()
        self.qdq.finish()
        self.services.infer_shapes(self.graph)
        for key, f in self.qdq.float_of.items():   # a dequantize: PyTorch's dequantize node, if any
            node = self.dq_node.get(key) or self.node_of.get(key)
            if node is not None:
                self.node_of[id(f)] = node
        # in memory only, for the fidelity report; the conversion never reads it
        return self.graph, SourceRecord("pt2", nodes=self.node_of)

    def visit(self, node):
        if _is_check(node.target) or node.output in self.alias:
            return
        fn = READERS.get(node.target)
        if fn is None:
            self._unsupported(node, node.target)
            return
        if any(self.values.get(self.resolve(r), 0) is None for r in node.refs()):
            self._mark_unconvertible(node)   # reads a value an unsupported op made: already listed
            return
        try:
            fn(self, node)
        except _Unsupported as e:
            self._unsupported(node, "%s: %s" % (node.target, e))
        except ConversionError:
            raise
        except (TypeError, KeyError, ValueError, AttributeError, IndexError, OverflowError,
                ZeroDivisionError, ArithmeticError) as e:
            # arguments of a type or value the op's schema does not allow: name the node
            raise ConversionError("%s: node '%s' (%s): malformed arguments: %s: %s"
                                  % (self.source, node.name, node.target, type(e).__name__,
                                     _first_line(e)))

    def _unsupported(self, node, reason):
        self.unsupported.append((_op_name(node), reason))
        self._mark_unconvertible(node)

    def _mark_unconvertible(self, node):
        for o in node.outputs:
            self.values[o] = None

    # -- values ------------------------------------------------------------------------------
    def value(self, ref):
        if isinstance(ref, list):
            return [self.value(r) for r in ref]
        if not isinstance(ref, _Ref):
            return ref
        name = self.resolve(ref.name)
        if name in self.values:
            return self.values[name]
        if name in self.lazy:
            fqn = self.lazy[name]
            if fqn is None:
                raise _Unsupported("reads '%s', a custom object or token input" % name)
            arr = self.archive.tensor(fqn)
            t = Tensor(fqn, arr.shape, str(arr.dtype), None, arr)
            self.values[name] = t
            return t
        raise ConversionError("%s: internal: '%s' is read before it is defined" % (self.source, name))

    def arg(self, node, key, default=None):
        v = node.args.get(key, default)
        return default if v is None else v

    def act(self, node, key="self"):
        """An activation argument (a Tensor computed from the inputs)."""
        v = self.value(node.args.get(key))
        if not isinstance(v, Tensor) or v.is_const:
            raise _Unsupported("argument '%s' is %s, not a tensor computed from the inputs"
                               % (key, "a constant" if isinstance(v, (Tensor, _QInts)) else repr(v)))
        return v

    def const(self, node, key, name):
        """A weight or bias argument: a constant Tensor (quantized when a dequantize made it)."""
        v = self.value(node.args.get(key))
        if v is None:
            return None
        if not isinstance(v, Tensor) or not v.is_const:
            raise _Unsupported("argument '%s' is computed at run time; only constant weights convert" % key)
        if v.qparams is None and v.dtype != "float32":
            data = v.data.astype(np.float32)
            return Tensor(name, data.shape, "float32", None, data)
        return Tensor(name, v.shape, v.dtype, v.qparams, v.data)

    def as_float(self, t):
        """The float value of activation ``t``: itself, or one shared ``dequantize`` op."""
        return self.qdq.as_float(t)

    def quantize(self, t, spec, name):
        """Activation ``t`` on ``spec``'s grid (a QUANTIZE of its float value when it is not)."""
        return self.qdq.quantize(t, spec, name)

    # -- quantization of op outputs -----------------------------------------------------------
    def qspec(self, node, dtypes=QUANT_INT_DTYPES):
        """The dtype/qparams/range of a per-tensor quantize or dequantize node."""
        dt = node.args.get("dtype")
        dtype = dt.name if isinstance(dt, _Dtype) else None
        if dtype not in dtypes:
            raise _Unsupported("quantizes to %s; activations convert as uint8, int8 or int16"
                               % (dtype or repr(dt)))
        scale = self._scalar(node, "scale", float)
        zp = self._scalar(node, "zero_point", int)
        qmin, qmax = int(self.arg(node, "quant_min")), int(self.arg(node, "quant_max"))
        if not (scale > 0 and math.isfinite(scale)):
            raise _Unsupported("scale %r is not a positive number" % scale)
        return _QSpec(dtype, QParams(np.float32(scale), zp), qmin, qmax)

    def _scalar(self, node, key, kind):
        v = node.args.get(key)
        if isinstance(v, _Ref):  # the .tensor overloads: a one-element constant
            t = self.value(v)
            if not isinstance(t, Tensor) or not t.is_const or t.data.size != 1:
                raise _Unsupported("%s is computed at run time (dynamic quantization has no fixed "
                                   "qparams to convert)" % key)
            v = t.data.reshape(-1)[0]
        if isinstance(v, (_Sym, _Opaque)) or v is None:
            raise _Unsupported("%s is not a constant" % key)
        return kind(v)

    def folded_spec(self, name):
        """The grid every reader of float value ``name`` quantizes it to, or None.

        Readers must all be per-tensor quantize ops with one spec, or a single clamp whose own
        output folds (conv -> relu -> quantize is one quantized conv, as PT2E annotates it)."""
        users = self.users.get(name, [])
        if not users or any(u is _OUTPUT for u in users):
            return None
        if all(u.target in QUANTIZE_PER_TENSOR for u in users):
            try:
                specs = [self.qspec(u) for u in users]
            except _Unsupported:
                return None
            return specs[0] if all(specs[0].same(s) for s in specs[1:]) else None
        u = users[0]
        if len(users) == 1 and u.target in CLAMPS and u.output and \
                isinstance(u.args.get("self"), _Ref) and self.resolve(u.args["self"].name) == name:
            return self.folded_spec(u.output)
        return None

    def emit(self, kind, node, acts, consts=(), attrs=None, quantizable=True, name=None):
        """Add source op ``kind``; quantized when every activation input is quantized and the
        output folds into a quantizer, else in float with dequantized inputs."""
        name = name or _op_name(node)
        spec = None
        if quantizable and all(a.qparams is not None for a in acts):
            spec = self.folded_spec(node.output)
        out, seen = self.qdq.place(kind, name, acts, consts, attrs, spec)
        self.node_of[id(out)] = node.output   # its quantize node, if any, takes over
        self.values[node.output] = seen
        return seen


# ------------------------------------------------------------------------------- readers
QD = "quantized_decomposed."


@reader(*QUANTIZE_PER_TENSOR)
def _quantize_per_tensor(w, node):
    spec = w.qspec(node)
    v = w.value(node.args.get("input"))
    if isinstance(v, Tensor) and v.is_const:
        w.values[node.output] = _QInts(_quantize_array(v.data, spec, None), spec)
        return
    if not isinstance(v, Tensor):
        raise _Unsupported("input is not a tensor")
    # PT2E: the op's output was already given this grid (emit); else quantize the float value
    w.values[node.output] = w.quantize(v, spec, v.name + "/quantize")
    w.node_of[id(w.values[node.output])] = node.output   # these integers are this node's output


@reader(QD + "quantize_per_channel.default")
def _quantize_per_channel(w, node):
    v = w.value(node.args.get("input"))
    spec = _channel_spec(w, node)
    if not (isinstance(v, Tensor) and v.is_const):
        raise _Unsupported("per-channel quantization of an activation")
    w.values[node.output] = _QInts(_quantize_array(v.data, spec, spec.qparams.axis), spec)


def _quantize_array(data, spec, axis):
    """quantized_decomposed.quantize_per_* evaluated the way torch does: x * (1 / scale) in
    float32, rounded half to even, plus the zero point, clamped to quant_min..quant_max."""
    q = spec.qparams
    x = np.asarray(data, dtype=np.float32)
    if axis is None:
        inv = np.float32(1.0 / float(q.scale[0]))
        zp = np.float32(q.zero_point[0])
    else:
        shape = [1] * x.ndim
        shape[axis % x.ndim] = -1
        inv = (np.float32(1.0) / q.scale.astype(np.float32)).reshape(shape)
        zp = q.zero_point.astype(np.float32).reshape(shape)
    ints = np.clip(np.round(x * inv) + zp, spec.qmin, spec.qmax)
    return ints.astype(spec.dtype)


def _channel_spec(w, node):
    dt = node.args.get("dtype")
    dtype = dt.name if isinstance(dt, _Dtype) else None
    if dtype not in ("uint8", "int8", "int16", "int32"):
        raise _Unsupported("per-channel integers of type %s" % (dtype or repr(dt)))
    scales = w.value(node.args.get("scales"))
    zps = w.value(node.args.get("zero_points"))
    if not (isinstance(scales, Tensor) and scales.is_const):
        raise _Unsupported("per-channel scales are computed at run time")
    zp = zps.data if isinstance(zps, Tensor) and zps.is_const else np.zeros(scales.data.size, np.int64)
    axis = int(w.arg(node, "axis", 0))
    q = QParams(scales.data.astype(np.float32).reshape(-1), zp.astype(np.int64).reshape(-1), axis)
    return _QSpec(dtype, q, w.arg(node, "quant_min", 0), w.arg(node, "quant_max", 0))


def _dequantized_const(w, node, v, spec):
    """dequantize of constant integers -> the quantized constant Tensor (weight or bias)."""
    if isinstance(v, _QInts):
        data = v.data
    elif isinstance(v, Tensor) and v.is_const and v.qparams is None:
        data = v.data
    else:
        raise _Unsupported("dequantizes a constant that is not an integer tensor")
    if str(data.dtype) != spec.dtype:
        raise _Unsupported("dequantize of %s integers declared as %s" % (data.dtype, spec.dtype))
    q = spec.qparams
    if not q.per_tensor:
        axis = q.axis % data.ndim
        if data.shape[axis] != q.scale.size:
            raise _Unsupported("%d scales for %d channels on axis %d" % (q.scale.size, data.shape[axis], axis))
        q = q.copy(axis=axis)
    return Tensor(node.output, data.shape, spec.dtype, q, np.ascontiguousarray(data))


@reader(QD + "dequantize_per_tensor.default", QD + "dequantize_per_tensor.tensor",
        QD + "dequantize_per_tensor.tensor2")
def _dequantize_per_tensor(w, node):
    v = w.value(node.args.get("input"))
    if isinstance(v, _QInts) or (isinstance(v, Tensor) and v.is_const):
        # a per-tensor weight, or an int32 bias from a custom quantizer
        w.values[node.output] = _dequantized_const(w, node, v, w.qspec(node, QUANT_INT_DTYPES + ("int32",)))
        return
    if not isinstance(v, Tensor):
        raise _Unsupported("input is not a tensor")
    spec = w.qspec(node)
    if not spec.matches(v):
        # PT2E pairs each dequantize with the quantize before it; other integers have no meaning
        raise ConversionError("%s: %s reads '%s' as %s %r, but it holds %s %r"
                              % (w.source, node.name, v.name, spec.dtype, spec.qparams, v.dtype, v.qparams))
    w.values[node.output] = v   # the same integers; readers decide float or quantized
    w.dq_node.setdefault(id(v), node.output)


@reader(QD + "dequantize_per_channel.default")
def _dequantize_per_channel(w, node):
    v = w.value(node.args.get("input"))
    if not isinstance(v, (Tensor, _QInts)) or (isinstance(v, Tensor) and not v.is_const):
        raise _Unsupported("per-channel dequantize of an activation")
    w.values[node.output] = _dequantized_const(w, node, v, _channel_spec(w, node))


def _pair(v, what="value"):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return [int(v), int(v)]
    v = list(v)
    if any(not isinstance(x, int) for x in v):
        raise _Unsupported("%s %r is not a constant" % (what, v))
    return v * 2 if len(v) == 1 else v


def _weight_and_bias(w, node, name, wkey="weight", bkey="bias"):
    wt = w.const(node, wkey, name + ".weight")
    if wt is None:
        raise _Unsupported("no weight")
    b = w.const(node, bkey, name + ".bias")
    if b is not None and b.qparams is None:
        b = Tensor(b.name, b.shape, "float32", None, b.data.astype(np.float32))
    return wt, b


@reader("aten.conv2d.default")
def _conv2d(w, node):
    _emit_conv(w, node, w.arg(node, "stride", 1), w.arg(node, "padding", 0),
               w.arg(node, "dilation", 1), w.arg(node, "groups", 1))


@reader("aten.convolution.default")
def _convolution(w, node):
    # what run_decompositions() makes of conv2d
    if w.arg(node, "transposed", False):
        raise _Unsupported("transposed convolution")
    _emit_conv(w, node, w.arg(node, "stride"), w.arg(node, "padding"), w.arg(node, "dilation"),
               w.arg(node, "groups", 1))


def _emit_conv(w, node, stride, padding, dilation, groups):
    x = w.act(node, "input")
    name = _op_name(node)
    wt, b = _weight_and_bias(w, node, name)
    if wt.rank != 4:
        raise _Unsupported("%d-D weight (only conv2d converts)" % wt.rank)
    if isinstance(padding, str):
        raise _Unsupported("padding='%s' (give the padding as numbers)" % padding)
    attrs = {"stride": _pair(stride, "stride"), "padding": _pair(padding, "padding"),
             "dilation": _pair(dilation, "dilation"), "groups": int(groups), "act": None}
    w.emit("conv2d", node, [x], [wt, b], attrs, quantizable=wt.qparams is not None)


@reader("aten.conv1d.default")
def _conv1d(w, node):
    """conv1d as PyTorch packs it: a conv2d over a map of height 1 (weight [O, I/g, 1, k])."""
    x = w.act(node, "input")
    name = _op_name(node)
    wt, b = _weight_and_bias(w, node, name)
    if wt.rank != 3:
        raise _Unsupported("%d-D weight for conv1d" % wt.rank)
    padding = w.arg(node, "padding", 0)
    if isinstance(padding, str):
        raise _Unsupported("padding='%s' (give the padding as numbers)" % padding)
    one = [int(_pair(v, k)[0]) for v, k in ((w.arg(node, "stride", 1), "stride"), (padding, "padding"),
                                              (w.arg(node, "dilation", 1), "dilation"))]
    wt4 = Tensor(wt.name, (wt.shape[0], wt.shape[1], 1, wt.shape[2]), wt.dtype, wt.qparams,
                 wt.data.reshape(wt.shape[0], wt.shape[1], 1, wt.shape[2]))
    attrs = {"stride": [1, one[0]], "padding": [0, one[1]], "dilation": [1, one[2]],
             "groups": int(w.arg(node, "groups", 1)), "act": None}
    w.emit("conv1d", node, [x], [wt4, b], attrs, quantizable=wt.qparams is not None)


@reader("aten.linear.default")
def _linear(w, node):
    x = w.act(node, "input")
    name = _op_name(node)
    wt, b = _weight_and_bias(w, node, name)
    if wt.rank != 2:
        raise _Unsupported("%d-D weight" % wt.rank)
    w.emit("linear", node, [x], [wt, b], {"act": None}, quantizable=wt.qparams is not None)


@reader("aten.relu.default", "aten.relu_.default")
def _relu(w, node):
    w.emit("hardtanh", node, [w.act(node)], attrs={"min": 0.0, "max": float("inf")})


@reader("aten.relu6.default")
def _relu6(w, node):
    w.emit("hardtanh", node, [w.act(node)], attrs={"min": 0.0, "max": 6.0})


@reader("aten.hardtanh.default", "aten.hardtanh_.default")
def _hardtanh(w, node):
    w.emit("hardtanh", node, [w.act(node)],
           attrs={"min": _number(w.arg(node, "min_val", -1.0)), "max": _number(w.arg(node, "max_val", 1.0))})


@reader("aten.clamp.default", "aten.clamp_.default")
def _clamp(w, node):
    lo, hi = w.arg(node, "min"), w.arg(node, "max")
    w.emit("hardtanh", node, [w.act(node)],
           attrs={"min": float("-inf") if lo is None else _number(lo),
                  "max": float("inf") if hi is None else _number(hi)})


def _number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Unsupported("bound %r is not a constant number" % (v,))
    return float(v)


ARITH = ("add", "sub", "mul", "div")


@reader(*["aten.%s.%s" % (k, v) for k in ARITH + tuple(a + "_" for a in ARITH) for v in ("Tensor", "Scalar")]
        + ["aten.rsub.Tensor", "aten.rsub.Scalar"])
def _binary(w, node):
    """add/mul of two computed tensors: the ``add``/``mul`` source op (quantized when PT2E
    quantized it). Any of add/sub/mul/div of a computed tensor and a constant (a number, a
    buffer, a lifted tensor constant, or a constant PT2E quantized and dequantizes, as XNNPACK
    does with the ``* c + d`` of torchvision's transform_input): ``binary_const`` in float, as
    PyTorch computes it (dequantized input, float arithmetic, then the next quantizer)."""
    kind = node.target.split(".")[1].rstrip("_")
    reverse = kind == "rsub"
    kind = "sub" if reverse else kind
    a, b = w.value(node.args.get("self")), w.value(node.args.get("other"))
    alpha = w.arg(node, "alpha", 1)
    if _is_act(a) and _is_act(b):
        if kind not in ("add", "mul"):
            raise _Unsupported("%s of two computed tensors (only add and mul convert)" % kind)
        if alpha != 1:
            raise _Unsupported("alpha=%r" % (alpha,))
        w.emit(kind, node, [w.act(node, "self"), w.act(node, "other")], attrs={"act": None})
        return
    if _is_act(a) == _is_act(b):
        raise _Unsupported("%s of two constants (nothing computed from the inputs)" % kind)
    # torch: add/sub(self, other, alpha) = self +- alpha * other; rsub = other - alpha * self
    const_key = "other" if _is_act(a) else "self"
    x_key = "self" if const_key == "other" else "other"
    reverse = reverse != (const_key == "self")   # True: c <op> x
    c = _const_float(w.value(node.args.get(const_key)))
    if c is None:
        raise _Unsupported("%s with an operand that is not a constant" % kind)
    if alpha != 1:
        scaled = "self" if node.target.startswith("aten.rsub") else "other"
        if scaled != const_key or isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise _Unsupported("alpha=%r on the computed operand" % (alpha,))
        c = (c * np.float32(alpha)).astype(np.float32)
    if c.ndim > len(_sizes(w, node.args.get(x_key), "the input")):
        raise _Unsupported("the constant has more dimensions than the tensor")
    ct = Tensor(_op_name(node) + "/const", c.shape, "float32", None, c)
    w.emit("binary_const", node, [w.act(node, x_key)], [ct], {"op": kind, "reverse": reverse},
           quantizable=False)


def _is_act(v):
    return isinstance(v, Tensor) and not v.is_const


def _const_float(v):
    """A number, or a constant tensor (float, integer, or quantized integers a dequantize reads),
    as the float32 array PyTorch computes with; None for anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return np.array(v, np.float32)
    if isinstance(v, _QInts):
        return None
    if not (isinstance(v, Tensor) and v.is_const):
        return None
    data = np.asarray(v.data)
    if v.qparams is None:
        return data.astype(np.float32)
    q = v.qparams   # dequantize_per_*: (q - zp) * scale in float32
    shape = [1] * data.ndim
    if not q.per_tensor:
        shape[q.axis % data.ndim] = -1
    scale = q.scale.astype(np.float32).reshape(shape if not q.per_tensor else [])
    zp = q.zero_point.astype(np.float32).reshape(shape if not q.per_tensor else [])
    return ((data.astype(np.float32) - zp) * scale).astype(np.float32)


@reader("aten.cat.default")
def _cat(w, node):
    items = w.value(node.args.get("tensors"))
    if not items or not all(isinstance(t, Tensor) and not t.is_const for t in items):
        raise _Unsupported("cat of values that are not all computed tensors")
    w.emit("cat", node, items, attrs={"dim": int(w.arg(node, "dim", 0))})


def _pool_window(w, node):
    """kernel, stride (defaults to the kernel) and padding, as both pooling ops spell them."""
    k = _pair(w.arg(node, "kernel_size"), "kernel_size")
    s = w.arg(node, "stride", [])
    return {"kernel": k, "stride": _pair(s, "stride") if s else list(k),
            "padding": _pair(w.arg(node, "padding", 0), "padding"),
            "ceil_mode": bool(w.arg(node, "ceil_mode", False))}


@reader("aten.max_pool2d.default")
def _max_pool2d(w, node):
    attrs = dict(_pool_window(w, node), dilation=_pair(w.arg(node, "dilation", 1), "dilation"))
    w.emit("max_pool2d", node, [w.act(node)], attrs=attrs)


@reader("aten.avg_pool2d.default")
def _avg_pool2d(w, node):
    attrs = dict(_pool_window(w, node), count_include_pad=bool(w.arg(node, "count_include_pad", True)),
                 divisor_override=w.arg(node, "divisor_override"))
    w.emit("avg_pool2d", node, [w.act(node)], attrs=attrs)


@reader("aten.adaptive_avg_pool2d.default")
def _adaptive_avg_pool2d(w, node):
    size = w.arg(node, "output_size")
    size = [size, size] if isinstance(size, int) else list(size)
    if len(size) == 1:
        size = size * 2
    w.emit("adaptive_avg_pool2d", node, [w.act(node)], attrs={"output_size": size})


@reader("aten.adaptive_max_pool2d.default")
def _adaptive_max_pool2d(w, node):
    """PyTorch has no quantized adaptive max pooling: the program computes it on dequantized
    values. A maximum is exact on any grid, so it is converted on the input's grid."""
    if len(node.outputs) > 1 and w.users.get(node.outputs[1]):
        raise _Unsupported("adaptive_max_pool2d whose indices are used")
    size = w.arg(node, "output_size")
    size = [size, size] if isinstance(size, int) else list(size)
    if len(size) == 1:
        size = size * 2
    w.emit("adaptive_max_pool2d", node, [w.act(node)], attrs={"output_size": size})


@reader("aten.mean.dim")
def _mean(w, node):
    x = w.act(node)
    dims = w.arg(node, "dim")
    dims = list(range(len(x.shape))) if dims is None or dims == [] else \
        ([dims] if isinstance(dims, int) else list(dims))
    if w.arg(node, "dtype") is not None:
        raise _Unsupported("mean with a dtype")
    w.emit("mean", node, [x], attrs={"dims": dims, "keepdim": bool(w.arg(node, "keepdim", False))})


@reader("aten.flatten.using_ints")
def _flatten(w, node):
    w.emit("flatten", node, [w.act(node)],
           attrs={"start": int(w.arg(node, "start_dim", 0)), "end": int(w.arg(node, "end_dim", -1))})


@reader("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default")
def _reshape(w, node):
    shape = node.args.get("size", node.args.get("shape"))
    if not isinstance(shape, list) or any(not isinstance(v, int) for v in shape):
        raise _Unsupported("target shape %r is not constant" % (shape,))
    w.emit("reshape", node, [w.act(node)], attrs={"shape": [int(v) for v in shape]})


@reader("aten.sigmoid.default", "aten.sigmoid_.default")
def _sigmoid(w, node):
    w.emit("sigmoid", node, [w.act(node)])


@reader("aten.hardswish.default", "aten.hardswish_.default")
def _hardswish(w, node):
    w.emit("hardswish", node, [w.act(node)])


@reader("aten.hardsigmoid.default", "aten.hardsigmoid_.default")
def _hardsigmoid(w, node):
    w.emit("hardsigmoid", node, [w.act(node)])


def _sizes(w, ref, what):
    """The static shape of value ``ref`` as the program records it (tensor_values)."""
    name = ref.name if isinstance(ref, _Ref) else None
    meta = w.jgraph.get("tensor_values", {}).get(name) if name else None
    if not meta or "sizes" not in meta:
        raise _Unsupported("the shape of %s is not recorded" % what)
    return [_static_int(v, "dimension of %s" % what, w.source) for v in meta["sizes"]]


@reader("aten.permute.default")
def _permute(w, node):
    dims = w.arg(node, "dims")
    if not isinstance(dims, list) or any(not isinstance(d, int) for d in dims):
        raise _Unsupported("dims %r are not constant" % (dims,))
    w.emit("permute", node, [w.act(node)], attrs={"dims": [int(d) for d in dims]})


@reader("aten.transpose.int")
def _transpose(w, node):
    x = w.act(node)
    rank = len(_sizes(w, node.args.get("self"), "the input"))
    dims = list(range(rank))
    a, b = int(w.arg(node, "dim0")) % rank, int(w.arg(node, "dim1")) % rank
    dims[a], dims[b] = dims[b], dims[a]
    w.emit("permute", node, [x], attrs={"dims": dims})


@reader("aten.chunk.default", "aten.split.Tensor", "aten.split_with_sizes.default",
        "aten.unsafe_split.Tensor", "aten.unsafe_split_with_sizes.default")
def _split(w, node):
    """chunk/split: one ``split`` op, the pieces on the input's grid (they are views of it); a
    piece that PyTorch then quantizes onto another grid is requantized by its quantize node."""
    x = w.act(node)
    shape = _sizes(w, node.args.get("self"), "the input")
    d = int(w.arg(node, "dim", 0)) % len(shape)
    n = shape[d]
    if node.target == "aten.chunk.default":
        step = -(-n // int(w.arg(node, "chunks")))
        sizes = [min(step, n - i) for i in range(0, n, step)]
    elif "with_sizes" in node.target:
        sizes = [int(v) for v in w.arg(node, "split_sizes")]
    else:
        a = int(w.arg(node, "split_size"))
        sizes = [min(a, n - i) for i in range(0, n, a)]
    if sum(sizes) != n or any(v <= 0 for v in sizes) or len(sizes) != len(node.outputs):
        raise _Unsupported("split sizes %s do not cover %d elements in %d outputs"
                           % (sizes, n, len(node.outputs)))
    name = _op_name(node)
    outs = [Tensor("%s:%d" % (name, i), None, x.dtype, x.qparams.copy() if x.qparams is not None else None)
            for i in range(len(sizes))]
    w.graph.ops.append(Op("split", [x], outs, {"dim": d, "sizes": sizes}, name))
    for o, t in zip(node.outputs, outs):
        w.values[o] = t
        w.node_of[id(t)] = o


def _slice_bounds(w, node):
    """(dim, start, end, size of the axis) of ``aten.slice.Tensor``, clamped as PyTorch does."""
    shape = _sizes(w, node.args.get("self"), "the input")
    d = int(w.arg(node, "dim", 0)) % len(shape)
    n = shape[d]
    a, b, step = w.arg(node, "start", 0), w.arg(node, "end", n), w.arg(node, "step", 1)
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (a, b, step)):
        raise _Unsupported("start, end or step (%r, %r, %r) is not a constant" % (a, b, step))
    if step < 1:
        raise _Unsupported("slice with step %d" % step)
    a, b = (a + n if a < 0 else a), (b + n if b < 0 else b)
    a, b = max(0, min(a, n)), max(0, min(b, n))
    if b <= a:
        raise _Unsupported("empty slice %d:%d of an axis of %d" % (a, b, n))
    return d, a, b, n, step


def _keep(w, node, x, kind, attrs, name):
    """A view op (slice, select, squeeze): it moves no value, so the output keeps the input's
    dtype and grid, quantized or float (slicing commutes with dequantize); a reader that
    quantizes it onto another grid requantizes it (``quantize``)."""
    out = Tensor(name, None, x.dtype, x.qparams.copy() if x.qparams is not None else None)
    w.graph.ops.append(Op(kind, [x], [out], attrs, name))
    w.values[node.output] = out
    w.node_of[id(out)] = node.output
    return out


def _piece(w, node, x, d, a, b, n, name):
    """Elements a..b-1 of axis d: one piece of a ``split`` (what the TorchScript frontend
    emits for a slice), on the input's grid."""
    sizes = [v for v in (a, b - a, n - b) if v > 0]
    outs = [Tensor("%s:%d" % (name, k), None, x.dtype, x.qparams.copy() if x.qparams is not None else None)
            for k in range(len(sizes))]
    w.graph.ops.append(Op("split", [x], outs, {"dim": d, "sizes": sizes}, name))
    return outs[1 if a > 0 else 0]


@reader("aten.slice.Tensor")
def _slice(w, node):
    """``x[:, a:b]`` with step 1 (the whole axis is an alias, see ``_Walker._full_slice``)."""
    x = w.act(node)
    d, a, b, n, step = _slice_bounds(w, node)
    if step > 1:   # every step-th element: a gather of those indices, on the input's grid
        w.emit("gather", node, [x], attrs={"dim": d, "index": list(range(a, b, step))})
        return
    out = _piece(w, node, x, d, a, b, n, _op_name(node))
    w.values[node.output] = out
    w.node_of[id(out)] = node.output


@reader("aten.select.int")
def _select(w, node):
    """``x[:, i]``: the piece i of a split, then a reshape without that axis."""
    x = w.act(node)
    shape = _sizes(w, node.args.get("self"), "the input")
    d = int(w.arg(node, "dim", 0)) % len(shape)
    n = shape[d]
    i = w.arg(node, "index", 0)
    if isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n:
        raise _Unsupported("index %r is not a constant in -%d..%d" % (i, n, n - 1))
    i %= n
    name = _op_name(node)
    piece = _piece(w, node, x, d, i, i + 1, n, name + "/slice")
    _keep(w, node, piece, "reshape", {"shape": shape[:d] + shape[d + 1:]}, name)


@reader("aten.unsqueeze.default", "aten.unsqueeze_.default", "aten.squeeze.default", "aten.squeeze.dim",
        "aten.squeeze.dims", "aten.squeeze_.dim", "aten.squeeze_.dims")
def _squeeze(w, node):
    """squeeze/unsqueeze move no element: a reshape to the shape the program records."""
    x = w.act(node)
    shape = _sizes(w, _Ref(node.output), "the output")
    _keep(w, node, x, "reshape", {"shape": shape}, _op_name(node))


@reader("aten.upsample_bilinear2d.vec", "aten.upsample_nearest2d.vec", "aten._upsample_nearest_exact2d.vec",
        "aten.upsample_bilinear2d.default", "aten.upsample_nearest2d.default")
def _upsample(w, node):
    """F.interpolate: the output on the input's grid (requantized when PyTorch chose another)."""
    t = node.target
    mode = "bilinear" if "bilinear" in t else ("nearest_exact" if "exact" in t else "nearest")
    size = w.arg(node, "output_size")
    scales = w.arg(node, "scale_factors")
    if scales is None and (w.arg(node, "scales_h") is not None or w.arg(node, "scales_w") is not None):
        scales = [w.arg(node, "scales_h"), w.arg(node, "scales_w")]
    if size is None and scales is None:
        raise _Unsupported("interpolate without a constant size or scale factor")
    if size is not None:
        if any(not isinstance(v, int) for v in size):
            raise _Unsupported("output size %r is not constant" % (size,))
        size = [int(v) for v in size]
    if scales is not None:
        scales = [None if v is None else float(v) for v in scales]
    w.emit("upsample", node, [w.act(node, "input" if "input" in node.args else "self")],
           attrs={"mode": mode, "size": size, "scales": scales,
                  "align_corners": bool(w.arg(node, "align_corners", False))})
