"""Run a circle model on onert (the ONE runtime) or on TICO's reference runtime.

* ``run_onert`` / ``run_onert_many``: onert's integer kernels, always in a child process. onert can
  kill the interpreter (a segfault on some files and backends), and it prints its real error text
  only from C++ to stderr, which the parent captures and attaches to the error. The child uses
  onert's low-level session: the high-level ``infer()`` of onert 0.1.0 fails on uint8 inputs.
* ``run_tico``: TICO's pure-Python ``CircleReferenceRuntime`` in FAKE_QUANTIZE mode (float
  arithmetic, every activation requantized). It runs in this process, covers ops and dtypes onert
  refuses, and honours the stored bias scale.

Both take and return arrays in the model's own dtypes and shapes (uint8 for a uint8 input ...).
Neither runtime is a dependency of the converter: they are imported only when called.
"""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from . import hazards

__all__ = ["RuntimeFailure", "run_onert", "run_onert_many", "run_tico", "run_luci_interpreter", "onert_unreliable"]

_STDERR_TAIL = 6000
_JOB_MARK = "@@one-import-pytorch-quant job "


class RuntimeFailure(RuntimeError):
    """A runtime could not run a model; the message carries the runtime's own reason."""


# --------------------------------------------------------------------------------- onert
def run_onert(circle, inputs, backends="cpu", timeout=300):
    """Run one circle model (bytes or a path) on onert in a child process; returns its outputs.

    Raises ``RuntimeFailure`` with onert's stderr when loading, preparing or running fails.
    """
    res = run_onert_many([(circle, inputs)], backends, timeout)[0]
    if isinstance(res, RuntimeFailure):
        raise res
    return res


def run_onert_many(jobs, backends="cpu", timeout=300):
    """Run several ``(circle bytes or path, inputs)`` jobs in one child process.

    Returns one entry per job: the list of output arrays, or a ``RuntimeFailure`` (never raised,
    so one bad model does not hide the results of the others). A job that kills the child is
    marked failed and the child is restarted for the jobs after it.
    """
    import numpy as np

    results = [None] * len(jobs)
    where = [_where(circle) for circle, _ in jobs]
    with tempfile.TemporaryDirectory(prefix="onert_run_") as tmp:
        for i, (circle, inputs) in enumerate(jobs):
            # always a copy named .circle: onert picks its loader by the extension
            model = os.path.join(tmp, "m%d.circle" % i)
            if isinstance(circle, (bytes, bytearray, memoryview)):
                with open(model, "wb") as f:
                    f.write(bytes(circle))
            else:
                shutil.copyfile(os.fspath(circle), model)
            arrays = _input_list(inputs)
            np.savez(os.path.join(tmp, "i%d.npz" % i), **{"i%d" % k: np.asarray(a) for k, a in enumerate(arrays)})
        todo = list(range(len(jobs)))
        while todo:
            stderr, rc = _spawn(tmp, todo, backends, timeout)
            per_job = _split_stderr(stderr)
            crashed = None
            for i in todo:
                out = os.path.join(tmp, "o%d.npz" % i)
                err = os.path.join(tmp, "e%d.txt" % i)
                if os.path.exists(out):
                    with np.load(out) as npz:
                        results[i] = [npz["o%d" % k] for k in range(len(npz.files))]
                elif os.path.exists(err):
                    with open(err) as f:
                        why = f.read().strip()
                    text = (per_job.get(i, "").strip() + "\n" + why).strip()
                    results[i] = RuntimeFailure("onert failed%s (backends=%r): %s"
                                                % (where[i], backends, text[-_STDERR_TAIL:]))
                elif crashed is None:
                    crashed = i
                    results[i] = RuntimeFailure("onert died%s (%s, backends=%r):\n%s" % (
                        where[i], _describe_returncode(rc), backends,
                        (per_job.get(i) or stderr)[-_STDERR_TAIL:].strip() or "<no stderr>"))
            todo = [i for i in todo if results[i] is None]
            if crashed is None and todo:   # nothing ran at all: the child itself is broken
                for i in todo:
                    results[i] = RuntimeFailure("onert child failed%s (%s):\n%s"
                                                % (where[i], _describe_returncode(rc), stderr[-_STDERR_TAIL:].strip()))
                todo = []
    return results


def _where(circle):
    """" on PATH" for a model given as a file, so errors name it; "" for bytes."""
    return "" if isinstance(circle, (bytes, bytearray, memoryview)) else " on %s" % os.fspath(circle)


def _input_list(inputs):
    import numpy as np
    return [inputs] if isinstance(inputs, np.ndarray) else [np.asarray(a) for a in inputs]


def _spawn(tmp, indices, backends, timeout):
    # -c with an explicit path entry: the child needs only this file's package, whatever the cwd
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import sys; sys.path.insert(0, %r); "
            "from onelib.pytorch_quant import runtimes; sys.exit(runtimes._child(sys.argv[1:]))" % root)
    cmd = [sys.executable, "-X", "faulthandler", "-c", code, tmp, backends] + [str(i) for i in indices]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "onert timed out after %ss" % timeout, -signal.SIGKILL
    return proc.stderr.decode("utf-8", "replace"), proc.returncode


def _split_stderr(text):
    """The child prints a mark before each job, so onert's C++ messages can be told apart."""
    out, cur = {}, None
    for line in text.splitlines(True):
        if line.startswith(_JOB_MARK):
            try:
                cur = int(line[len(_JOB_MARK):].strip())
            except ValueError:
                cur = None
            continue
        if cur is not None:
            out[cur] = out.get(cur, "") + line
    return out


def _describe_returncode(rc):
    if rc < 0:
        try:
            return "killed by signal %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit code %d" % rc


def _child(argv):
    """Child process: run jobs ``argv[2:]`` found in directory ``argv[0]`` with backends ``argv[1]``."""
    import traceback

    import numpy as np

    tmp, backends = argv[0], argv[1]
    for arg in argv[2:]:
        i = int(arg)
        sys.stderr.write("%s%d\n" % (_JOB_MARK, i))
        sys.stderr.flush()
        try:
            with np.load(os.path.join(tmp, "i%d.npz" % i)) as npz:
                inputs = [npz["i%d" % k] for k in range(len(npz.files))]
            outs = _onert_session_run(os.path.join(tmp, "m%d.circle" % i), inputs, backends)
            np.savez(os.path.join(tmp, "o%d.npz" % i), **{"o%d" % k: o for k, o in enumerate(outs)})
        except Exception as e:
            with open(os.path.join(tmp, "e%d.txt" % i), "w") as f:
                f.write("%s: %s" % (type(e).__name__, e))
                if not isinstance(e, ValueError):
                    f.write("\n" + traceback.format_exc(limit=3))
        sys.stderr.flush()
    return 0


def _onert_session_run(model_path, inputs, backends):
    import numpy as np
    import onert
    from onert.native.libnnfw_api_pybind import prepare_config

    sess = onert.infer.session(model_path, backends)
    raw = sess.session
    infos = sess.get_inputs_tensorinfo()
    if len(infos) != len(inputs):
        raise ValueError("model has %d inputs, %d given" % (len(infos), len(inputs)))
    for i, info in enumerate(infos):
        want_shape = tuple(int(d) for d in info.dims[:info.rank])
        want_dtype = np.dtype(info.dtype)
        # onert copies raw bytes: a wrong dtype or shape would run and give garbage
        if tuple(inputs[i].shape) != want_shape or inputs[i].dtype != want_dtype:
            raise ValueError("input %d: model wants %s %s, got %s %s"
                             % (i, want_dtype, want_shape, inputs[i].dtype, inputs[i].shape))
    raw.set_prepare_config(prepare_config.ENABLE_INTERNAL_OUTPUT_ALLOC)
    raw.prepare()
    for i, a in enumerate(inputs):
        raw.set_input(i, np.ascontiguousarray(a))
    raw.run()
    return [np.array(raw.get_output(i)) for i in range(raw.output_size())]


def onert_unreliable(graph):
    """Why onert 0.1.0 cannot be trusted on this circle-stage graph, or None.

    These are onert's known silent wrong answers and refusals (stated in ``hazards``): a caller
    that wants a trustworthy number runs such a graph on TICO instead.
    """
    return hazards.onert_unreliable(graph)


# ---------------------------------------------------------------------------------- TICO
@contextlib.contextmanager
def _tico_requantizing_concat():
    """Make TICO's reference runtime requantize CONCATENATION outputs, as circle does.

    TICO 0.3.0 lists CONCATENATION among the value-preserving ops (with RESHAPE, SPLIT ...) that
    FAKE_QUANTIZE mode does not requantize, so a concatenation inside a graph is neither rounded
    nor clamped to its own output grid, although circle/TFLite requantize every input to it.
    Measured: 6 LSB at the output of qnnpack ShuffleNetV2 units and 20 LSB for a qnnpack U-Net
    (0 and 1 LSB with this), while onert agrees with PyTorch. A CONCATENATION that is the graph
    output is quantized when read, so single-op cat models do not show it.
    """
    try:
        from tico.circle.runtime import executor
        from tico.circle.runtime.kernels import _codes
        original = executor.value_preserving_builtin_codes
        concat = _codes(("CONCATENATION",))
    except (ImportError, AttributeError):  # another TICO release: run it as it is
        yield
        return
    executor.value_preserving_builtin_codes = lambda: original() - concat
    try:
        yield
    finally:
        executor.value_preserving_builtin_codes = original


def _tico_registry():
    """TICO's kernels plus HARD_SWISH, which TICO 0.3.0 lacks.

    The luci profile writes hardswish as the quantized HARD_SWISH. In FAKE_QUANTIZE mode TICO
    dequantizes, runs the float kernel and requantizes onto the output grid, which for
    hardswish is its definition x * relu6(x + 3) / 6 (PyTorch's quantized hardswish computes the
    same in float). None when this TICO release has another layout (run it as it is).
    """
    try:
        import numpy as np
        from tico.circle.runtime.kernels import default_kernel_registry
        from tico.circle.runtime.kernels.elementwise import _unary_float
    except ImportError:
        return None
    reg = default_kernel_registry()
    try:
        reg.register_named("HARD_SWISH", _unary_float(
            lambda v: v * np.clip(v + np.float32(3.0), 0.0, 6.0) / np.float32(6.0)))
    except Exception:  # already there in a newer TICO
        pass
    return reg


def run_tico(circle, inputs):
    """Run a circle model (bytes or a path) with TICO's reference runtime, FAKE_QUANTIZE mode.

    Quantized-integer inputs are dequantized for TICO and quantized outputs are quantized back
    (round half away from zero, like circle QUANTIZE), so results have the model's dtypes.
    Raises ``RuntimeFailure`` when tico is missing or cannot run the model.
    """
    import numpy as np
    try:
        from tico.circle.runtime import CircleReferenceRuntime, ExecutionMode
        from tico.circle.runtime.quantization import dequantize_array, quantize_array
    except ImportError as e:
        raise RuntimeFailure("TICO's reference runtime is not installed (pip install tico==0.3.0): %s" % e)
    if isinstance(circle, (bytes, bytearray, memoryview)):
        data = bytes(circle)
    else:
        with open(os.fspath(circle), "rb") as f:
            data = f.read()
    arrays = _input_list(inputs)
    try:
        reg = _tico_registry()
        rt = CircleReferenceRuntime(data, registry=reg) if reg is not None else CircleReferenceRuntime(data)
        tensors = rt.input_tensors
        if len(tensors) != len(arrays):
            raise RuntimeFailure("model has %d inputs, %d given" % (len(tensors), len(arrays)))
        feed = []
        for i, (a, t) in enumerate(zip(arrays, tensors)):
            if a.dtype != t.dtype or tuple(a.shape) != tuple(t.shape):
                raise RuntimeFailure("input %d: model wants %s %s, got %s %s"
                                     % (i, t.dtype, tuple(t.shape), a.dtype, tuple(a.shape)))
            feed.append(dequantize_array(a, t) if t.is_quantized_integer else a)
        with _tico_requantizing_concat():
            res = rt.run(feed, mode=ExecutionMode.FAKE_QUANTIZE)
        outs = []
        for o, t in zip(res.outputs, rt.output_tensors):
            if t.is_quantized_integer:
                o = quantize_array(np.asarray(o, dtype=np.float32), t)
            outs.append(np.asarray(o))
        return outs
    except RuntimeFailure:
        raise
    except Exception as e:  # tico raises many types (its own errors, flatbuffer errors ...)
        raise RuntimeFailure("TICO reference runtime failed%s: %s: %s" % (_where(circle), type(e).__name__, e))


# ---------------------------------------------------------------------- luci-interpreter
# circle TensorType -> numpy dtype name, for the raw bytes circle-interpreter reads and writes
_CIRCLE_DTYPES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8"}


def luci_interpreter_path(bin_dir=None):
    """``circle-interpreter`` in ``bin_dir`` or ``$ONE_BIN_DIR``, or None."""
    folder = bin_dir or os.environ.get("ONE_BIN_DIR")
    if not folder:
        return None
    exe = os.path.join(folder, "circle-interpreter")
    return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None


def _io_specs(data):
    """([(shape, dtype)] of the inputs, the same of the outputs) of circle bytes' first subgraph."""
    from circle_schema.v0_10.circle.Model import Model
    m = Model.GetRootAs(bytearray(data), 0)
    sg = m.Subgraphs(0)

    def spec(i):
        t = sg.Tensors(i)
        return tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (), \
            _CIRCLE_DTYPES.get(int(t.Type()), None)

    return ([spec(sg.Inputs(k)) for k in range(sg.InputsLength())],
            [spec(sg.Outputs(k)) for k in range(sg.OutputsLength())])


def run_luci_interpreter(circle, inputs, bin_dir=None, timeout=300):
    """Run a circle model (bytes or a path) with ONE's ``circle-interpreter`` (luci-interpreter).

    Its interface: ``circle-interpreter MODEL IN_PREFIX OUT_PREFIX`` reads each input as raw bytes
    of its own dtype from ``IN_PREFIX0``, ``IN_PREFIX1`` ... and writes ``OUT_PREFIX0`` ...
    Raises ``RuntimeFailure`` when the tool is missing, refuses the model or crashes.
    """
    import numpy as np
    exe = luci_interpreter_path(bin_dir)
    if exe is None:
        raise RuntimeFailure("circle-interpreter not found (set ONE_BIN_DIR to ONE's bin folder)")
    if isinstance(circle, (bytes, bytearray, memoryview)):
        data = bytes(circle)
    else:
        with open(os.fspath(circle), "rb") as f:
            data = f.read()
    in_specs, out_specs = _io_specs(data)
    arrays = _input_list(inputs)
    if len(arrays) != len(in_specs):
        raise RuntimeFailure("model has %d inputs, %d given" % (len(in_specs), len(arrays)))
    with tempfile.TemporaryDirectory(prefix="luci_intp_") as tmp:
        model = os.path.join(tmp, "m.circle")
        with open(model, "wb") as f:
            f.write(data)
        for k, (a, (shape, dtype)) in enumerate(zip(arrays, in_specs)):
            if a.dtype != np.dtype(dtype) or tuple(a.shape) != tuple(shape):
                raise RuntimeFailure("input %d: model wants %s %s, got %s %s"
                                     % (k, dtype, shape, a.dtype, tuple(a.shape)))
            np.ascontiguousarray(a).tofile(os.path.join(tmp, "in%d" % k))
        try:
            proc = subprocess.run([exe, model, os.path.join(tmp, "in"), os.path.join(tmp, "out")],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeFailure("circle-interpreter did not finish in %d s%s" % (timeout, _where(circle)))
        if proc.returncode != 0:
            raise RuntimeFailure("circle-interpreter failed (%s)%s: %s"
                                 % (_describe_returncode(proc.returncode), _where(circle),
                                    proc.stdout.decode("utf-8", "replace")[-_STDERR_TAIL:].strip()))
        outs = []
        for k, (shape, dtype) in enumerate(out_specs):
            raw = np.fromfile(os.path.join(tmp, "out%d" % k), dtype=dtype)
            outs.append(raw.reshape(shape))
        return outs
