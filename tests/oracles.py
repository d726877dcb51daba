"""Test oracles that execute a quantized .circle model, and LSB comparisons.

Two independent executors, because each is wrong where the other is right
(circle-runtimes.md §5); both are the product's own ``onelib.pytorch_quant.runtimes``:

* ``run_onert``: the deployment runtime with real integer kernels. It has silent
  wrong-answer bugs (u8 activations with i8 weights, u8 per-channel FC, QUANTIZE to
  i8) and can crash the process, so it runs in a child process.
* ``run_tico``: TICO's pure-Python reference runtime in FAKE_QUANTIZE mode. It
  computes in float between requantizations, so it is a semantic reference (≤ 1 LSB
  from integer kernels) that also covers ops and dtypes onert rejects, and it
  honours the stored bias scale, which onert ignores.

Neither is optional: a missing package makes the call raise ``OracleError``, so
tests fail rather than skip. Inputs must already have the model's dtypes and
shapes (both runtimes refuse a mismatch instead of reinterpreting the bytes).
"""

from typing import Dict

import numpy as np

from onelib.pytorch_quant.runtimes import RuntimeFailure as OracleError
from onelib.pytorch_quant.runtimes import run_onert, run_tico

__all__ = ["OracleError", "run_onert", "run_tico", "lsb", "lsb_stats", "topk_share"]


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


def topk_share(want, got, k):
    """Independent tie-aware top-k agreement: how many of ``got``'s k largest are among
    ``want``'s k largest values (ties with ``want``'s k-th value count), averaged over rows."""
    w, g = want.reshape(want.shape[0], -1), got.reshape(want.shape[0], -1)
    k = min(k, w.shape[1])
    share = []
    for wr, gr in zip(w, g):
        kth = sorted(wr.tolist(), reverse=True)[k - 1]
        picked = sorted(range(len(gr)), key=lambda i: (-gr[i], i))[:k]
        share.append(sum(1 for i in picked if wr[i] >= kth) / float(k))
    return float(np.mean(share))
