"""Inspect a TorchScript archive before ``torch.jit.load`` runs any of it.

``torch.jit.load`` compiles the archive's ``code/`` (TorchScript source, Python syntax) and runs
the ``__setstate__`` of every class that has one while it unpickles ``data.pkl``; ``torch.jit.freeze``
then folds constant expressions, which runs ops on constant arguments. So an archive's own code
runs before any check of ours could. This module reads the zip with ``zipfile`` and parses
``code/`` with ``ast`` (nothing is compiled, unpickled or run) and refuses the archive unless:

* every class that defines a method running at load time (``__setstate__``, ``__getstate__``)
  is one of PyTorch's own quantized module classes (``LOAD_TIME_CLASS_PREFIXES``), and those
  methods, and the methods of ``self`` they call, call only the ops PyTorch's quantized modules
  call there (``LOAD_TIME_CALLS``: prepack/unpack, comparisons, ``set_weight_bias``);
* no code anywhere names an op that reaches the file system or the process
  (``torch.from_file`` and the like, ``DENIED``), or an op namespace outside
  ``OP_NAMESPACES``, or a custom class outside ``torch.classes.quantized``;
* every member is of a kind torch writes, and its size (from the zip directory, checked before
  reading) is within ``MAX_CODE_BYTES``.

A refusal is a ``ConversionError`` naming the member, the class and the method.
"""
import ast
import re
import zipfile

from ..errors import ConversionError
from .zip_archive import budget_for

# classes whose __setstate__/__getstate__ torch itself generates for quantized modules
LOAD_TIME_CLASS_PREFIXES = (
    "__torch__.torch.ao.nn.quantized.",
    "__torch__.torch.ao.nn.intrinsic.quantized.",
    "__torch__.torch.ao.nn.qat.",
    "__torch__.torch.ao.nn.intrinsic.qat.",
    "__torch__.torch.nn.quantized.",            # torch < 1.13 module paths
    "__torch__.torch.nn.intrinsic.quantized.",
)
LOAD_TIME_METHODS = ("__setstate__", "__getstate__")

# what those methods (and set_weight_bias / _weight_bias, which they call) call in PyTorch's
# quantized modules: prepack and unpack of weights, and comparisons on the state tuple
LOAD_TIME_CALLS = frozenset([
    "ops.quantized.conv1d_prepack", "ops.quantized.conv2d_prepack", "ops.quantized.conv3d_prepack",
    "ops.quantized.conv_transpose1d_prepack", "ops.quantized.conv_transpose2d_prepack",
    "ops.quantized.conv_transpose3d_prepack", "ops.quantized.linear_prepack",
    "ops.quantized.linear_prepack_fp16", "ops.quantized.linear_unpack",
    "ops.quantized.linear_unpack_fp16", "ops.quantized.embedding_bag_prepack",
    "ops.prim.RaiseException", "ops.prim.unchecked_cast", "ops.prim.isinstance",
    "torch.eq", "torch.ne", "torch.lt", "torch.gt", "torch.le", "torch.ge", "torch.len",
    "torch.__is__", "torch.__isnot__", "torch.__not__", "torch.format", "torch.append",
    "torch.add", "torch.sub", "torch.mul", "torch.neg", "torch.size", "torch.dim",
    "torch.__getitem__", "torch.list", "torch.dequantize", "torch.warn",
    "unchecked_cast", "isinstance", "annotate", "uninitialized", "len", "int", "float", "bool",
    "str", "range",
    # methods on self and on the packed-params objects
    "set_weight_bias", "_weight_bias", "unpack", "__setstate__", "__getstate__", "forward",
    "_set_weight_bias",
])

# and the weight packing ops of every quantized module kind (conv1d/2d/3d, conv_transpose, linear,
# embedding_bag; fp16 variants): quantized::<kind>_prepack / _unpack
LOAD_TIME_PACKING = re.compile(r"^ops\.quantized\.[a-z0-9_]+_(prepack|unpack)(_fp16)?$")

# op namespaces code may call as ops.<ns>.<op> (torch.ops.<ns>.<op>)
OP_NAMESPACES = ("aten", "prim", "quantized", "quantized_decomposed", "_quantized")
# custom classes code may name as torch.classes.<ns>.<class>
CLASS_NAMESPACES = ("quantized",)

# any name (torch.X, ops.ns.X, method, string constant) matching this is refused: ops that read
# or write files, map memory, start threads or processes, or load code
DENIED = re.compile(r"(^|_)(from_file|file|files|save|load|open|mmap|shared|share_memory|pickle|"
                    r"unpickle|fork|wait|thread|threads|system|exec|eval|exit|dlopen|library|"
                    r"_dlpack|set_flush_denormal|manual_seed|seed)($|_)", re.I)

MAX_CODE_BYTES = 64 << 20      # all of code/ together (real quantized models: tens of kB)
MAX_MEMBERS = 100000
_MANGLE = re.compile(r"___torch_mangle_\d+\.")
_MANGLE_TEXT = re.compile(rb"___torch_mangle_\d+")
_DEBUG_SUFFIXES = (".py.debug_pkl",)


def _refuse(source, where, why):
    raise ConversionError("%s: %s: %s; this importer does not load TorchScript archives whose code "
                          "could act outside the model (README: security)" % (source, where, why))


def _dotted(node):
    """``a.b.c`` (Name/Attribute chain) -> 'a.b.c', else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _call_name(call):
    """The name a call reads as: 'torch.conv2d', 'ops.quantized.conv2d', or for a method
    call on any other receiver just the method name."""
    d = _dotted(call.func)
    if d is not None:
        return d
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


class _Class(object):
    def __init__(self, qualname, member, node):
        self.qualname = qualname
        self.member = member
        self.methods = dict((f.name, f) for f in node.body if isinstance(f, ast.FunctionDef))
        self._nodes = {}

    def nodes(self, mname):
        """Every AST node of a method, walked once."""
        if mname not in self._nodes:
            self._nodes[mname] = list(ast.walk(self.methods[mname]))
        return self._nodes[mname]


def _file_size(z):
    try:
        f = z.fp
        pos = f.tell()
        f.seek(0, 2)
        size = f.tell()
        f.seek(pos)
        return size
    except (AttributeError, OSError, ValueError):
        return None


def inspect_archive(path, source=None):
    """Refuse (ConversionError) a TorchScript archive whose code could act when loaded."""
    source = source or getattr(path, "name", path)
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError,
            UnicodeDecodeError, OverflowError) as e:
        raise ConversionError("%s: not a readable TorchScript archive: %s" % (source, e))
    with z:
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            _refuse(source, "zip directory", "%d members" % len(infos))
        # torch reads every member whole: sizes from the zip directory, before torch does
        size = _file_size(z)
        declared = sum(i.file_size for i in infos)
        if size is not None and declared > budget_for(size):
            raise ConversionError("%s: the zip directory declares %d bytes of members in a %d-byte "
                                  "file (a zip bomb?)" % (source, declared, size))
        for info in infos:
            if info.flag_bits & 0x1:
                raise ConversionError("%s: member %s is encrypted" % (source, info.filename))
        code = []
        total = 0
        for info in infos:
            name = info.filename
            i = name.find("/code/")
            if i < 0:
                continue
            rel = name[i + len("/code/"):]
            if info.is_dir() or rel.endswith(_DEBUG_SUFFIXES):
                continue
            if not rel.endswith(".py"):
                _refuse(source, name, "a member of code/ that is not TorchScript source")
            if not rel.startswith("__torch__/") and rel != "__torch__.py":
                _refuse(source, name, "TorchScript source outside code/__torch__/")
            total += info.file_size
            if total > MAX_CODE_BYTES:
                _refuse(source, name, "code/ declares more than %d MB" % (MAX_CODE_BYTES >> 20))
            code.append((name, rel[:-3].replace("/", ".")))
        classes, functions = [], []
        seen = set()   # torch writes one copy of a class per mangled variant: check each text once
        for name, module in code:
            try:
                with z.open(name) as f:
                    data = f.read(MAX_CODE_BYTES + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError,
                    NotImplementedError) as e:   # zlib.error is an Exception subclass too
                raise ConversionError("%s: %s cannot be read: %s" % (source, name, e))
            except Exception as e:   # zlib.error
                raise ConversionError("%s: %s cannot be read: %s" % (source, name, e))
            key = (_MANGLE.sub("", module + "."), _MANGLE_TEXT.sub(b"", data))
            if key in seen:
                continue
            seen.add(key)
            try:
                tree = ast.parse(data.decode("utf-8"), name)
            except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeDecodeError) as e:
                _refuse(source, name, "not TorchScript source (%s)" % type(e).__name__)
            module = _MANGLE.sub("", module + ".")
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    classes.append(_Class(module + node.name, name, node))
                elif isinstance(node, ast.FunctionDef):
                    functions.append((module + node.name, name, node))
        _check_load_time(source, classes)
        for cls in classes:
            for mname in cls.methods:
                _check_names(source, "%s, %s.%s" % (cls.member, cls.qualname, mname), cls.nodes(mname))
        for qualname, member, fn in functions:
            _check_names(source, "%s, %s" % (member, qualname), ast.walk(fn))


def _check_load_time(source, classes):
    """The methods torch runs while loading: only in PyTorch's quantized classes, calling only
    what those call."""
    for cls in classes:
        runs = [m for m in LOAD_TIME_METHODS if m in cls.methods]
        if not runs:
            continue
        where = "%s, class %s" % (cls.member, cls.qualname)
        if not cls.qualname.startswith(LOAD_TIME_CLASS_PREFIXES):
            _refuse(source, where, "defines %s, which torch.jit.load runs; only PyTorch's own "
                                   "quantized modules may" % " and ".join(runs))
        seen, todo = set(), list(runs)
        while todo:
            mname = todo.pop()
            if mname in seen or mname not in cls.methods:
                continue
            seen.add(mname)
            for call in [n for n in cls.nodes(mname) if isinstance(n, ast.Call)]:
                name = _call_name(call)
                if name is None or name not in LOAD_TIME_CALLS and \
                        name.split(".")[-1] not in LOAD_TIME_CALLS and not LOAD_TIME_PACKING.match(name):
                    _refuse(source, "%s.%s" % (where, mname),
                            "calls %s while loading, which PyTorch's quantized modules do not"
                            % (name or "a computed function"))
                if isinstance(call.func, ast.Attribute) and _dotted(call.func.value) == "self":
                    todo.append(call.func.attr)


def _check_names(source, where, nodes):
    """Anywhere: no denied op or method, no foreign op namespace or custom class. Attribute names
    of the user's own modules (``self.file_conv``) are not ops and are not judged by name."""
    for node in nodes:
        if isinstance(node, ast.Attribute):
            d = _dotted(node)
            parts = d.split(".") if d else []
            if not parts or parts[0] not in ("torch", "ops", "__torch__"):
                continue
            if parts[0] == "ops" and len(parts) >= 2 and parts[1] not in OP_NAMESPACES:
                _refuse(source, where, "calls an op in namespace '%s'" % parts[1])
            if parts[:2] == ["torch", "ops"] and (len(parts) < 3 or parts[2] not in OP_NAMESPACES):
                _refuse(source, where, "names %s" % d)
            if parts[:2] == ["torch", "classes"] and (len(parts) < 3 or parts[2] not in CLASS_NAMESPACES):
                _refuse(source, where, "names the custom class %s" % d)
            if parts[0] == "__torch__" and parts[1:3] == ["torch", "classes"] and \
                    (len(parts) < 4 or parts[3] not in CLASS_NAMESPACES):
                _refuse(source, where, "names the custom class %s" % d)
            if parts[0] != "__torch__" and any(DENIED.search(p) for p in parts[1:]):
                _refuse(source, where, "names %s, which can reach files or the process" % d)
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else \
                node.func.attr if isinstance(node.func, ast.Attribute) else None
            if name is not None and DENIED.search(name):
                _refuse(source, where, "calls %s, which can reach files or the process" % _call_name(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                DENIED.fullmatch(node.value.strip()):
            _refuse(source, where, "names '%s', which can reach files or the process" % node.value)
