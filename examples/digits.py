"""Real data for the README's example and its test: a small CNN trained on scikit-learn's digits.

scikit-learn ships the digits set (1797 handwritten 8x8 images, 10 classes) inside its wheel, so
nothing is downloaded. The images are upsampled to 32x32 and normalised; a seeded permutation
holds out 20 % (360 images) for evaluation and the rest trains the model and calibrates the
quantizers.

What is here, used by ``examples/example.py`` and ``tests/test_digits.py``:

* ``load_data``: the split (or the same from an ``.npz`` with ``images`` and ``labels``);
* ``DigitsNet`` and ``train``: conv-bn-relu x3 with max pooling, flatten, two Linear layers;
* ``RECIPES``: the ways users quantize it (eager x86 / qnnpack, eager QAT, FX x86, PT2E XNNPACK,
  PT2E XNNPACK QAT); each returns a ``QuantizedDigits`` that saves the file the converter reads
  and runs PyTorch's own quantized model (the reference);
* ``convert_options``: the converter options of a cfg's ``[one-import-pytorch-quant]`` section,
  so the test converts in process with exactly what the example's cfg says;
* ``run_luci_interpreter``: ONE's ``circle-interpreter`` when ONE's tools are found;
* ``compare``: accuracy, arg-max agreement and max LSB of the output scale.

Every quantized model ends in Linear ``fc2`` with a float output (DeQuantStub, or PT2E's
dequantize), so PyTorch's and circle's outputs are dequantized values on the same grid: their
difference divided by the output scale is an integer number of LSB.
"""
import contextlib
import copy
import logging
import math
import os
import subprocess
import tempfile
import time
import warnings

import numpy as np

SIZE = 32            # the 8x8 digits are upsampled to SIZE x SIZE
HELD_OUT = 0.2       # share of the images held out (360 of sklearn's 1797)
SECTION = "one-import-pytorch-quant"

# Import-time notices of torch/torchao that say nothing about this example (torchao's optional CUDA
# kernels failing to load on a CPU machine; a pytree deprecation inside torchao).
for _logger in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_logger).setLevel(logging.ERROR)
for _pattern in (r"(?s).*deprecated.*", r".*reduce_range.*", r".*must run observer.*",
                 r".*TracerWarning.*", r".*quantized tensor.*"):
    warnings.filterwarnings("ignore", message=_pattern)


# ------------------------------------------------------------------------------------ data
class Split(object):
    """Training and held-out images, float32 NCHW (N, 1, SIZE, SIZE), and int64 labels."""

    def __init__(self, x_train, y_train, x_test, y_test, n_classes, source):
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test
        self.n_classes, self.source = n_classes, source


def load_data(path=None, seed=0):
    """sklearn's digits (or ``path``: an .npz with ``images`` (N, H, W) and ``labels`` (N,)),
    upsampled to SIZE x SIZE, normalised with the training set's mean and std, split by a seeded
    permutation: ceil(20 %) held out."""
    import torch
    import torch.nn.functional as F
    if path:
        with np.load(path) as npz:
            images, labels = npz["images"], npz["labels"]
        source = os.path.basename(path)
    else:
        from sklearn.datasets import load_digits
        digits = load_digits()
        images, labels = digits.images, digits.target
        source = "sklearn digits"
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError("expected images (N, H, W) and labels (N,), got %s and %s"
                         % (images.shape, labels.shape))
    with torch.no_grad():
        x = F.interpolate(torch.from_numpy(images[:, None]), size=(SIZE, SIZE), mode="bilinear",
                          align_corners=False).numpy()
    order = np.random.RandomState(seed).permutation(len(x))
    n_test = int(math.ceil(HELD_OUT * len(x)))
    test, train = order[:n_test], order[n_test:]
    mean, std = float(x[train].mean()), float(x[train].std())
    x = ((x - mean) / std).astype(np.float32)
    return Split(x[train], labels[train], x[test], labels[test], int(labels.max()) + 1, source)


def batches(x, size):
    """``x`` in chunks of exactly ``size`` rows; the last one is padded with zeros.
    Returns (chunks, n) where n is the number of real rows."""
    n = len(x)
    chunks = []
    for start in range(0, n, size):
        c = x[start:start + size]
        if len(c) < size:
            c = np.concatenate([c, np.zeros((size - len(c),) + c.shape[1:], c.dtype)])
        chunks.append(np.ascontiguousarray(c))
    return chunks, n


# ----------------------------------------------------------------------------------- model
def _model_class():
    import torch.ao.quantization as tq
    import torch.nn as nn

    class DigitsNet(nn.Module):
        """1x32x32 -> conv-bn-relu-pool x3 (8, 16, 32 channels) -> 32x4x4 -> Linear 64 -> Linear.

        The stubs mark eager mode's quantized region; FX and torch.export see them as identities.
        """

        def __init__(self, n_classes=10):
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
            self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()
            self.conv3, self.bn3, self.relu3 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()
            self.pool1, self.pool2, self.pool3 = nn.MaxPool2d(2), nn.MaxPool2d(2), nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            self.fc1, self.relu4 = nn.Linear(32 * (SIZE // 8) ** 2, 64), nn.ReLU()
            self.fc2 = nn.Linear(64, n_classes)

        fuse_list = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["conv3", "bn3", "relu3"],
                     ["fc1", "relu4"]]

        def forward(self, x):
            x = self.pool1(self.relu1(self.bn1(self.conv1(self.quant(x)))))
            x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
            x = self.pool3(self.relu3(self.bn3(self.conv3(x))))
            x = self.relu4(self.fc1(self.flatten(x)))
            return self.dequant(self.fc2(x))

    return DigitsNet


def make_model(n_classes, seed=0):
    import torch
    torch.manual_seed(seed)
    return _model_class()(n_classes)


@contextlib.contextmanager
def one_thread():
    """Train on one thread: on a small, shared machine torch's threads mostly wait for each other
    (measured on 2 busy cores: 2 threads were 6x slower than 1)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _epochs(model, data, epochs, lr, seed, batch=64):
    with one_thread():
        return _run_epochs(model, data, epochs, lr, seed, batch)


def _run_epochs(model, data, epochs, lr, seed, batch):
    import torch
    import torch.nn.functional as F
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * int(math.ceil(len(x) / batch))))
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), batch):
            idx = perm[start:start + batch]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    return model.eval()


def train(data, epochs=6, seed=0):
    """A float DigitsNet trained on ``data``'s training images (seeded, a few seconds on CPU)."""
    import torch
    torch.manual_seed(seed)
    return _epochs(make_model(data.n_classes, seed), data, epochs, 1e-2, seed)


def predict_float(model, x):
    import torch
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


# ------------------------------------------------------------------------------ quantizing
@contextlib.contextmanager
def engine(name):
    """Quantized kernels of ``name``: packed weights belong to the engine current at convert time."""
    import torch
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = old


class QuantizedDigits(object):
    """A model quantized by one recipe: the file the converter reads, and PyTorch's reference.

    ``kind``: 'torchscript' (eager, FX: traced with the batch the circle will have) or 'pt2'
    (exported with that batch). ``run(x)`` runs PyTorch's quantized model (float logits on the
    output grid); ``output_scale`` is that grid's step.
    """

    def __init__(self, recipe, kind, model, batch, engine_name=None, program=None):
        self.recipe, self.kind, self.model, self.batch = recipe, kind, model, batch
        self.engine, self.program = engine_name, program
        if kind == "pt2":
            out = [n for n in program.graph.nodes if n.op == "output"][0].args[0][0]
            if "dequantize_per_tensor" not in str(out.target):
                raise ValueError("%s: the program's output is not a dequantize" % recipe)
            self.output_scale = float(out.args[1])
        else:
            self.output_scale = float(model.fc2.scale)

    @property
    def suffix(self):
        return ".pt2" if self.kind == "pt2" else ".pt"

    def save(self, path):
        """Write the file the converter reads; returns ``path``."""
        import torch
        if self.kind == "pt2":
            torch.export.save(self.program, path)
            return path
        with engine(self.engine), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(self.model, torch.zeros(self.batch, 1, SIZE, SIZE), check_trace=False)
        torch.jit.save(traced, path)
        return path

    def run(self, x):
        """PyTorch's quantized logits for ``x`` (any number of rows)."""
        import torch
        if self.kind == "pt2":
            chunks, n = batches(x, self.batch)
            with torch.no_grad():
                return np.concatenate([self.model(torch.from_numpy(c)).numpy() for c in chunks])[:n]
        with engine(self.engine), torch.no_grad():
            return self.model(torch.from_numpy(x)).numpy()


def _calibration(data, size=None):
    """The training images in chunks (of ``size`` rows when the model has a fixed batch)."""
    if size is None:
        return [data.x_train[i:i + 256] for i in range(0, len(data.x_train), 256)]
    return [data.x_train[i:i + size] for i in range(0, len(data.x_train) - size + 1, size)] or \
        batches(data.x_train, size)[0]


def quantize_eager(float_model, data, batch, engine_name="x86", qat_epochs=0):
    """Eager mode: fuse, prepare (or prepare_qat and fine-tune), calibrate on training images,
    convert."""
    import torch
    import torch.ao.quantization as tq
    m = copy.deepcopy(float_model)
    with engine(engine_name):
        if qat_epochs:
            m.train()
            m.qconfig = tq.get_default_qat_qconfig(engine_name)
            tq.fuse_modules_qat(m, m.fuse_list, inplace=True)
            tq.prepare_qat(m, inplace=True)
            _epochs(m, data, qat_epochs, 1e-3, seed=1)
        else:
            m.eval()
            m.qconfig = tq.get_default_qconfig(engine_name)
            tq.fuse_modules(m, m.fuse_list, inplace=True)
            tq.prepare(m, inplace=True)
            with torch.no_grad():
                for c in _calibration(data):
                    m(torch.from_numpy(c))
        m.eval()
        tq.convert(m, inplace=True)
    name = "eager %s" % engine_name + (" QAT" if qat_epochs else "")
    return QuantizedDigits(name, "torchscript", m, batch, engine_name)


def quantize_fx(float_model, data, batch, engine_name="x86"):
    """FX graph mode: prepare_fx with the engine's default qconfig mapping, calibrate, convert_fx."""
    import torch
    import torch.ao.quantization as tq
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    m = copy.deepcopy(float_model).eval()
    with engine(engine_name):
        calib = _calibration(data)
        p = prepare_fx(m, tq.get_default_qconfig_mapping(engine_name), (torch.from_numpy(calib[0]),))
        with torch.no_grad():
            for c in calib:
                p(torch.from_numpy(c))
        q = convert_fx(p)
    return QuantizedDigits("FX %s" % engine_name, "torchscript", q, batch, engine_name)


def _xnnpack_quantizer(is_qat=False):
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat))


def quantize_pt2e(float_model, data, batch, qat_epochs=0):
    """PT2E with torchao's XNNPACK quantizer (int8, per-channel weights): export with the batch the
    circle will have (strict=True, see the README's PT2E recipe), prepare, calibrate (or
    prepare_qat_pt2e and fine-tune), convert_pt2e, export again."""
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401  registers quantized_decomposed ops
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
    example = (torch.from_numpy(data.x_train[:batch]),)
    if len(example[0]) < batch:
        example = (torch.from_numpy(batches(data.x_train, batch)[0][0]),)
    m = copy.deepcopy(float_model)
    calib = _calibration(data, batch)
    if qat_epochs:
        from torchao.quantization.pt2e import move_exported_model_to_eval
        gm = torch.export.export(m.train(), example, strict=True).module()
        prepared = prepare_qat_pt2e(gm, _xnnpack_quantizer(is_qat=True))
        _qat_pt2e_epochs(prepared, data, calib, qat_epochs)
        move_exported_model_to_eval(prepared)
    else:
        gm = torch.export.export(m.eval(), example, strict=True).module()
        prepared = prepare_pt2e(gm, _xnnpack_quantizer())
        with torch.no_grad():
            for c in calib:
                prepared(torch.from_numpy(c))
    converted = convert_pt2e(prepared)
    program = torch.export.export(converted, example)
    name = "PT2E XNNPACK" + (" QAT" if qat_epochs else "")
    return QuantizedDigits(name, "pt2", program.module(), batch, program=program)


def _qat_pt2e_epochs(prepared, data, calib, epochs):
    """Fine-tune a prepare_qat_pt2e graph: it was exported with a fixed batch, so it trains on
    whole calibration chunks (shuffled)."""
    with one_thread():
        _run_qat_pt2e_epochs(prepared, data, calib, epochs)


def _run_qat_pt2e_epochs(prepared, data, calib, epochs):
    import torch
    import torch.nn.functional as F
    y_train = data.y_train
    size = len(calib[0])
    opt = torch.optim.SGD(prepared.parameters(), lr=1e-3, momentum=0.9)
    rng = np.random.RandomState(1)
    for _ in range(epochs):
        perm = rng.permutation(len(data.x_train))
        for start in range(0, len(perm) - size + 1, size):
            idx = perm[start:start + size]
            opt.zero_grad()
            F.cross_entropy(prepared(torch.from_numpy(data.x_train[idx])), torch.from_numpy(y_train[idx])).backward()
            opt.step()


# name -> function(float_model, data, batch) -> QuantizedDigits
RECIPES = {
    "eager_x86": lambda m, d, b: quantize_eager(m, d, b, "x86"),
    "eager_qnnpack": lambda m, d, b: quantize_eager(m, d, b, "qnnpack"),
    "eager_x86_qat": lambda m, d, b: quantize_eager(m, d, b, "x86", qat_epochs=2),
    "fx_x86": lambda m, d, b: quantize_fx(m, d, b, "x86"),
    "pt2e_xnnpack": lambda m, d, b: quantize_pt2e(m, d, b),
    "pt2e_xnnpack_qat": lambda m, d, b: quantize_pt2e(m, d, b, qat_epochs=2),
}


# ------------------------------------------------------------------------------ converting
def cfg_batch(cfg_path):
    """The batch of the circle a cfg makes: the first dimension of its ``input_shapes``, or None."""
    from onelib.pytorch_quant import cfgfile
    raw = cfgfile.read_section(cfg_path, SECTION)
    shapes = cfgfile.parse_shapes(raw.get("input_shapes") or None)
    return int(shapes[0][0]) if shapes else None


def convert_options(cfg_path):
    """``ConvertOptions`` from the conversion keys of a cfg's ``[one-import-pytorch-quant]``
    section (the runtime profile, fc_as_conv, I/O types ...), without its paths and shapes: the
    test converts in process with the choices the example's cfg makes."""
    from onelib.pytorch_quant import cfgfile
    from onelib.pytorch_quant.api import ConvertOptions
    raw = cfgfile.read_section(cfg_path, SECTION)
    kw = {}
    for key, value in raw.items():
        if key not in ConvertOptions.FIELDS or key == "input_shapes":
            continue
        if isinstance(ConvertOptions.FIELDS[key], bool):
            value = cfgfile.parse_bool(value, key, SECTION)
        kw[key] = value
    return ConvertOptions(**kw)


def describe_profile(cfg_path):
    """One line on the runtime form the cfg chooses, for the example's output."""
    from onelib.pytorch_quant import cfgfile
    raw = cfgfile.read_section(cfg_path, SECTION)
    if raw.get("profile"):
        if raw["profile"] == "onert":
            return ("profile=onert, the form onert and luci-interpreter compute right (per-channel "
                    "Linear as 1x1 CONV_2D: their uint8 FULLY_CONNECTED uses channel 0's scale)")
        return "profile=%s (luci's form, for luci and NPU backends)" % raw["profile"]
    if cfgfile.parse_bool(raw.get("fc_as_conv", False), "fc_as_conv", SECTION):
        return ("fc_as_conv=True, the form onert computes right (per-channel Linear as 1x1 CONV_2D: "
                "onert's and luci-interpreter's uint8 FULLY_CONNECTED use channel 0's scale)")
    return "luci's default form (per-channel FULLY_CONNECTED: wrong on onert 0.1.0 and luci-interpreter)"


# -------------------------------------------------------------------------------- runtimes
def find_circle_interpreter():
    """ONE's ``circle-interpreter`` (luci-interpreter): (path, None) or (None, why not)."""
    from onelib.pytorch_quant import tools
    looked = []
    for reason, folder in tools.candidate_bin_dirs():
        exe = os.path.join(folder, "circle-interpreter")
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe, None
        looked.append(folder)
    return None, "no circle-interpreter in %s (set ONE_BIN_DIR to ONE's bin/)" % ", ".join(looked)


def run_luci_interpreter(exe, circle_path, x, out_shape, timeout=600):
    """Run a one-input, one-float-output circle on ``circle-interpreter``: raw native bytes in
    ``IN_PREFIX0``, raw bytes out of ``OUT_PREFIX0``."""
    with tempfile.TemporaryDirectory(prefix="luci_run_") as tmp:
        in_prefix, out_prefix = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        np.ascontiguousarray(x, dtype=np.float32).tofile(in_prefix + "0")
        proc = subprocess.run([exe, circle_path, in_prefix, out_prefix], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(out_prefix + "0"):
            raise RuntimeError("circle-interpreter failed (exit %d): %s"
                               % (proc.returncode, proc.stdout.decode("utf-8", "replace")[-2000:]))
        return np.fromfile(out_prefix + "0", dtype=np.float32).reshape(out_shape)


def run_chunked(run, x, batch):
    """``run(chunk)`` on fixed-size chunks of ``x`` (the circle's batch); the padding is dropped."""
    chunks, n = batches(x, batch)
    return np.concatenate([run(c) for c in chunks])[:n]


def run_onert_chunked(circle_path, x, batch):
    from onelib.pytorch_quant.runtimes import run_onert_many
    chunks, n = batches(x, batch)
    outs = run_onert_many([(circle_path, [c]) for c in chunks])
    for o in outs:
        if isinstance(o, Exception):
            raise o
    return np.concatenate([o[0] for o in outs])[:n]


def run_tico_chunked(circle_path, x, batch):
    from onelib.pytorch_quant.runtimes import run_tico
    return run_chunked(lambda c: run_tico(circle_path, [c])[0], x, batch)


# -------------------------------------------------------------------------------- compare
class Compared(object):
    """Accuracy of a circle's logits and how they compare with PyTorch's quantized logits."""

    def __init__(self, logits, reference, labels, scale):
        self.accuracy = float(np.mean(np.argmax(logits, 1) == labels))
        self.correct = int(np.sum(np.argmax(logits, 1) == labels))
        self.agreement = float(np.mean(np.argmax(logits, 1) == np.argmax(reference, 1)))
        self.max_lsb = int(np.rint(np.abs(logits.astype(np.float64) - reference) / scale).max())


def compare(logits, reference, labels, scale):
    return Compared(logits, reference, labels, scale)


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t
