"""Test oracles that execute a quantized .circle model, and LSB comparisons.

Two independent executors, because each is wrong where the other is right
(circle-runtimes.md §5):

* ``run_onert``: the deployment runtime with real integer kernels. It has silent
  wrong-answer bugs (u8 activations with i8 weights, u8 per-channel FC, QUANTIZE to
  i8) and can crash the process, so it runs in a child process.
* ``run_tico``: TICO's pure-Python reference runtime in FAKE_QUANTIZE mode. It
  computes in float between requantizations, so it is a semantic reference (≤ 1 LSB
  from integer kernels) that also covers ops and dtypes onert rejects, and it
  honours the stored bias scale, which onert ignores.

Neither is optional: a missing package makes the call raise, so tests fail
rather than skip.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence, Union

import numpy as np

__all__ = ["OracleError", "run_onert", "run_tico", "lsb", "lsb_stats"]

_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onert_runner.py")

# Enough of the child's stderr to hold onert's C++ message plus a Python traceback.
_STDERR_TAIL = 6000


class OracleError(RuntimeError):
    """An oracle could not run the model; the message carries the runtime's reason."""


def _as_input_list(inputs):
    if isinstance(inputs, np.ndarray):
        return [inputs]
    return [np.asarray(a) for a in inputs]


def _describe_returncode(rc):
    if rc < 0:
        try:
            return "killed by signal %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit code %d" % rc


def run_onert(circle_path, inputs, backends="cpu", timeout=300):
    # type: (Union[str, os.PathLike], Sequence[np.ndarray], str, float) -> List[np.ndarray]
    """Run ``circle_path`` with onert in a subprocess; returns the output arrays.

    ``inputs`` must already have the model's input dtype and shape (the child
    checks both: onert would otherwise reinterpret the bytes). Raises
    ``OracleError`` with onert's stderr if loading, preparing or running fails,
    or if the child crashes.
    """
    inputs = _as_input_list(inputs)
    circle_path = os.fspath(circle_path)
    with tempfile.TemporaryDirectory(prefix="onert_oracle_") as tmp:
        model = circle_path
        # onert picks its loader from the file extension; anything but .circle
        # (or .tflite) fails with an unhelpful "Failed to open ... loader".
        if not circle_path.endswith(".circle"):
            model = os.path.join(tmp, "model.circle")
            shutil.copyfile(circle_path, model)
        in_path = os.path.join(tmp, "inputs.npz")
        out_path = os.path.join(tmp, "outputs.npz")
        np.savez(in_path, **{"i%d" % i: a for i, a in enumerate(inputs)})
        # faulthandler: a segfault (onert crashes on some malformed files) then
        # leaves a Python stack on stderr showing whether load, prepare or run died.
        cmd = [sys.executable, "-X", "faulthandler", _RUNNER, model, in_path, out_path,
               backends]
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise OracleError("onert timed out after %ss on %s" % (timeout, circle_path)) from e
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0 or not os.path.exists(out_path):
            raise OracleError("onert failed on %s (%s, backends=%r):\n%s"
                              % (circle_path, _describe_returncode(proc.returncode),
                                 backends, stderr[-_STDERR_TAIL:].strip() or "<no stderr>"))
        with np.load(out_path) as npz:
            return [npz["o%d" % i] for i in range(len(npz.files))]


def run_tico(circle_bytes_or_path, inputs):
    # type: (Union[bytes, str, os.PathLike], Sequence[np.ndarray]) -> List[np.ndarray]
    """Run a circle model with TICO's reference runtime in FAKE_QUANTIZE mode.

    ``inputs`` are in the model's own input dtypes (uint8 etc. for quantized
    inputs, float32 for float inputs). Quantized-integer inputs are dequantized
    first, and quantized-integer outputs are quantized back (round half away, as
    circle QUANTIZE does), so the result has the model's declared output dtypes
    and can be compared with onert's output directly.
    """
    # Imported here: tico takes ~3 s to import and only tests that use it should pay.
    from tico.circle.runtime import CircleReferenceRuntime, ExecutionMode
    from tico.circle.runtime.quantization import dequantize_array, quantize_array

    if isinstance(circle_bytes_or_path, (bytes, bytearray, memoryview)):
        data = bytes(circle_bytes_or_path)
        where = "<circle bytes>"
    else:
        where = os.fspath(circle_bytes_or_path)
        with open(where, "rb") as f:
            data = f.read()
    inputs = _as_input_list(inputs)
    try:
        rt = CircleReferenceRuntime(data)
        tensors = rt.input_tensors
        if len(tensors) != len(inputs):
            raise OracleError("model has %d inputs, %d given" % (len(tensors), len(inputs)))
        feed = []
        for i, (a, t) in enumerate(zip(inputs, tensors)):
            if a.dtype != t.dtype or tuple(a.shape) != tuple(t.shape):
                raise OracleError("input %d: model wants %s %s, got %s %s"
                                  % (i, t.dtype, tuple(t.shape), a.dtype, tuple(a.shape)))
            feed.append(dequantize_array(a, t) if t.is_quantized_integer else a)
        res = rt.run(feed, mode=ExecutionMode.FAKE_QUANTIZE)
        outs = []
        for o, t in zip(res.outputs, rt.output_tensors):
            if t.is_quantized_integer:
                o = quantize_array(np.asarray(o, dtype=np.float32), t)
            outs.append(np.asarray(o))
        return outs
    except (OracleError, ImportError):
        raise
    except Exception as e:  # tico raises many types (CircleError, flatbuffer errors...)
        raise OracleError("tico reference runtime failed on %s: %s: %s"
                          % (where, type(e).__name__, e)) from e


def _lsb_diffs(a, b, scale):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        # No broadcasting: an NCHW/NHWC mix-up must not compare silently.
        raise ValueError("shape mismatch: %s vs %s" % (a.shape, b.shape))
    a_int, b_int = a.dtype.kind in "iu", b.dtype.kind in "iu"
    if a_int != b_int:
        raise TypeError("compare integers with integers or floats with floats, got %s and %s"
                        % (a.dtype, b.dtype))
    if a_int:
        return np.abs(a.astype(np.int64) - b.astype(np.int64))
    if scale is None:
        raise ValueError("float arrays need the grid scale")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
        raise ValueError("non-finite values in compared arrays")
    return np.rint(np.abs(a64 - b64) / np.asarray(scale, dtype=np.float64)).astype(np.int64)


def lsb(a, b, scale=None):
    # type: (np.ndarray, np.ndarray, object) -> int
    """Largest difference between ``a`` and ``b`` in steps of the integer grid.

    Integer arrays: max |a - b| of the integers (no scale needed). Float arrays
    (dequantized values on the same grid): round(max |a - b| / scale). ``scale``
    may be an array broadcastable to the data for per-channel grids.
    """
    d = _lsb_diffs(a, b, scale)
    return int(d.max()) if d.size else 0


def lsb_stats(a, b, scale=None):
    # type: (np.ndarray, np.ndarray, object) -> Dict[str, float]
    """``dict(max, mean, exact_share)`` of the per-element LSB differences.

    ``exact_share`` is the fraction of elements that agree exactly: a few ±1 LSB
    elements are normal between kernels, many are a sign of a systematic error.
    """
    d = _lsb_diffs(a, b, scale)
    if d.size == 0:
        return {"max": 0, "mean": 0.0, "exact_share": 1.0}
    return {"max": int(d.max()), "mean": float(d.mean()),
            "exact_share": float(np.count_nonzero(d == 0)) / d.size}
