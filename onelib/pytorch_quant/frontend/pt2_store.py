"""The parts of a ``.pt2`` zip the importer reads: one model's graph JSON (checked by
pt2_archive.py) and its raw tensors, with zipfile, json and numpy only (nothing is unpickled)."""
import json

import numpy as np

from ..errors import ConversionError
from . import pt2_archive, zip_archive

# schema majors of models/*.json this reader understands (torch/_export/serde/schema.py)
KNOWN_SCHEMA_MAJORS = (8,)

# torch/_export/serde/schema.py ScalarType codes -> numpy dtype names
SCALAR_TYPES = {1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16",
                7: "float32", 8: "float64", 12: "bool", 13: "bfloat16"}


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
