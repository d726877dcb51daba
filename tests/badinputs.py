"""Building bad inputs in code: rewritten ``.pt2`` archives, malicious TorchScript, and a
one-line-error check. Used by ``test_security.py`` and by ``scripts/fuzz_pt2.py``.
"""
import io
import json
import os
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "one-import-pytorch-quant"
DRIVER = os.path.join(REPO, NAME)


# ------------------------------------------------------------------------------------ .pt2
class Pt2(object):
    """The members of a ``.pt2`` in memory (name -> bytes, in order), to rewrite and write back."""

    def __init__(self, path_or_bytes):
        data = path_or_bytes
        if not isinstance(data, bytes):
            with open(data, "rb") as f:
                data = f.read()
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            self.members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
        self.model_name = [n for n, _ in self.members if "/models/" in n and n.endswith(".json")][0]
        self.root = self.model_name[:self.model_name.index("models/")]

    def get(self, rel):
        for n, d in self.members:
            if n == self.root + rel:
                return d
        raise KeyError(rel)

    def set(self, rel, data):
        name = self.root + rel
        self.members = [(n, data if n == name else d) for n, d in self.members]
        if all(n != name for n, _ in self.members):
            self.members.append((name, data))

    def model(self):
        return json.loads(self.model_member())

    def model_member(self):
        for n, d in self.members:
            if n == self.model_name:
                return d
        raise KeyError(self.model_name)

    def set_model(self, doc_or_bytes):
        data = doc_or_bytes if isinstance(doc_or_bytes, bytes) else json.dumps(doc_or_bytes).encode()
        self.members = [(n, data if n == self.model_name else d) for n, d in self.members]

    def to_bytes(self, compression=zipfile.ZIP_STORED, compressed=()):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for n, d in self.members:
                z.writestr(n, d, compress_type=zipfile.ZIP_DEFLATED if n in compressed or
                           (compressed == "all") else compression)
        return buf.getvalue()

    def save(self, path, **kw):
        with open(path, "wb") as f:
            f.write(self.to_bytes(**kw))
        return path


def nodes(doc):
    return doc["graph_module"]["graph"]["nodes"]


def tensor_ref(name):
    return {"as_tensor": {"name": name}}


def first_node(doc, word):
    for n in nodes(doc):
        if word in n["target"]:
            return n
    raise KeyError(word)


def user_input_name(doc):
    for spec in doc["graph_module"]["signature"]["input_specs"]:
        if "user_input" in spec:
            return spec["user_input"]["arg"]["as_tensor"]["name"]
    raise KeyError("user_input")


# ------------------------------------------------------------------------------ TorchScript
def save_file_writing_module(path, victim):
    """A scripted module whose ``__setstate__`` maps ``victim`` (shared) and writes 'AAAA' over
    its first bytes: it runs inside ``torch.jit.load``."""
    from typing import Tuple

    import torch

    class Writer(torch.nn.Module):
        def __init__(self, target: str):
            super().__init__()
            self.target = target
            self.buf = torch.zeros(4, dtype=torch.uint8)

        def forward(self, x):
            return x + 1

        @torch.jit.export
        def __getstate__(self) -> Tuple[str, bool, torch.Tensor]:
            return (self.target, self.training, self.buf)

        @torch.jit.export
        def __setstate__(self, state: Tuple[str, bool, torch.Tensor]) -> None:
            self.target = state[0]
            self.training = state[1]
            b = torch.from_file(self.target, shared=True, size=4, dtype=torch.uint8)
            b.fill_(65)
            self.buf = b

    torch.jit.save(torch.jit.script(Writer(victim)), path)
    return path


def tiny_torchscript(path, channels=3):
    """An eager-quantized (x86) conv, traced and saved: a valid TorchScript input."""
    import warnings

    import torch
    import torch.ao.quantization as tq
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.conv = nn.Conv2d(channels, 4, 3)

        def forward(self, x):
            return self.dequant(self.conv(self.quant(x)))

    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = "x86"
    try:
        torch.manual_seed(0)
        model = Net().eval()
        model.qconfig = tq.get_default_qconfig("x86")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = tq.prepare(model)
            for _ in range(3):
                prepared(torch.randn(1, channels, 8, 8))
            q = tq.convert(prepared)
            torch.jit.save(torch.jit.trace(q, torch.randn(1, channels, 8, 8)), path)
    finally:
        torch.backends.quantized.engine = old
    return path


def tiny_pt2(path):
    """A PT2E (XNNPACK) conv, exported and saved: a valid .pt2 input."""
    if os.path.join(REPO, "tests") not in sys.path:
        sys.path.insert(0, os.path.join(REPO, "tests"))
    import warnings

    import pt2models
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pt2models.quantize("conv", "xnnpack").save(path)


# --------------------------------------------------------------------------------- checks
def one_line_error(stderr, code, needles=()):
    """None when ``stderr`` is exactly one driver error line naming every needle; else why not."""
    lines = [l for l in stderr.splitlines() if l.strip()]
    if len(lines) != 1:
        return "%d lines: %r" % (len(lines), stderr[-2000:])
    line = lines[0]
    if not line.startswith(NAME + ": "):
        return "not a driver line: %r" % line
    if "internal error" in line or "Traceback" in line:
        return "internal error: %r" % line
    for n in needles:
        if n not in line:
            return "%r not in %r" % (n, line)
    return None
