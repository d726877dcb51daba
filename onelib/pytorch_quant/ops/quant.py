"""The integer rules every weighted op shares: weight dtype policy and bias quantization."""
import numpy as np

from ..circle.vocab import INT_RANGE  # noqa: F401 (the integer ranges live in the circle vocabulary)
from ..errors import ConversionError
from ..ir import QParams, Tensor

# the bias dtype luci expects for each model (activation) dtype
BIAS_DTYPE = {"uint8": "int32", "int16": "int64"}


def model_weight(w, act_dtype, name=None):
    """PyTorch's integer weight -> the model dtype's weight, exactly (no requantization).

    uint8 model: int8 values and zero points move up by 128 (luci and onert need uint8 weights
    beside uint8 activations; the real values are unchanged).
    int16 model: int8 values widen to int16 with the same scale (luci's S16 filter), zero point 0.
    """
    q = w.qparams
    data = w.data
    if act_dtype == "uint8":
        if w.dtype == "int8":
            data = (data.astype(np.int16) + 128).astype(np.uint8)
            q = QParams(q.scale, q.zero_point + 128, q.axis)
        elif w.dtype != "uint8":
            raise ConversionError("%s: %s weights in a uint8 model" % (w.name, w.dtype))
    elif act_dtype == "int16":
        if np.any(q.zero_point != 0):
            raise ConversionError("%s: int16 models need symmetric weights (zero point 0)" % w.name)
        if w.dtype not in ("int8", "int16"):
            raise ConversionError("%s: %s weights in an int16 model" % (w.name, w.dtype))
        data = data.astype(np.int16)
        q = q.copy()
    else:
        raise ConversionError("%s: activations of dtype %s have no circle weight rule" % (w.name, act_dtype))
    return Tensor(name or w.name, data.shape, str(data.dtype), q, data)


def bias_scale(in_q, w_q):
    """luci's rule, computed in float32 exactly as luci does: scale[c] = in_scale * w_scale[c]."""
    return np.float32(in_q.scale[0]) * w_q.scale.astype(np.float32)


def quantize_bias(bias, in_q, w_q, act_dtype, n_out, name):
    """Float (or already integer) bias -> int32 (uint8 model) / int64 (int16 model), zero point 0.

    PyTorch keeps the bias in float and quantizes it inside the kernel; circle stores it quantized
    with scale in_scale * w_scale[c]. A missing bias becomes zeros (circle kernels want one).
    """
    dtype = BIAS_DTYPE[act_dtype]
    scale = bias_scale(in_q, w_q)
    if scale.size == 1 and n_out > 1:
        scale_vec = np.repeat(scale, n_out)
    else:
        scale_vec = scale
    if bias is None:
        ints = np.zeros(n_out, dtype)
    elif bias.qparams is not None:
        # already integer (PT2E with a derived bias spec): keep its integers when its scale is ours
        given = np.broadcast_to(bias.qparams.scale.astype(np.float32), scale_vec.shape)
        if np.all(np.abs(given.astype(np.float64) - scale_vec.astype(np.float64)) < 1e-10):
            ints = bias.data.astype(np.int64)
        else:
            real = (bias.data.astype(np.float64) - bias.qparams.zero_point.astype(np.float64)) * given
            ints = np.round(real / scale_vec.astype(np.float64))
    else:
        ints = np.round(bias.data.astype(np.float64) / scale_vec.astype(np.float64))
    lo, hi = INT_RANGE[dtype]
    over = (ints < lo) | (ints > hi)
    if np.any(over):
        raise ConversionError("%s: bias of channel(s) %s does not fit %s at scale in_scale * w_scale "
                              "(luci's rule); the weight scales of those channels are too small for "
                              "their bias" % (name, list(np.nonzero(over)[0][:8]), dtype))
    ints = ints.astype(dtype)
    q = QParams(scale, np.zeros(scale.size, np.int64), 0)
    return Tensor(name, ints.shape, dtype, q, ints)


def fit_bias_of_dead_channels(w, bias, in_q, act_dtype):
    """Give a weight channel whose codes are all its zero point a scale its bias fits under.

    The bias scale is in_scale * w_scale[c] (luci's rule). Observers give an all-zero channel
    (pruned, or dead after BN folding) a tiny scale, so its float bias can overflow int32 and
    would be clipped. Such a channel's real weights are 0 whatever its scale, so raising that
    one scale is exact. Returns ``w`` itself when nothing needs it.
    """
    q = w.qparams
    if bias is None or bias.qparams is not None or q is None or q.per_tensor:
        return w
    hi = INT_RANGE[BIAS_DTYPE[act_dtype]][1]
    need = np.abs(bias.data.astype(np.float64)) / (float(in_q.scale[0]) * (hi // 2))
    grow = need > q.scale.astype(np.float64)
    if not grow.any():   # the usual case: no need to look at the weights at all
        return w
    axis_data = np.moveaxis(w.data.astype(np.int64), q.axis, 0).reshape(q.scale.size, -1)
    dead = np.all(axis_data == q.zero_point.reshape(-1, 1), axis=1)
    grow = dead & grow
    if not grow.any():
        return w
    scale = q.scale.copy()
    scale[grow] = need[grow].astype(np.float32)
    return Tensor(w.name, w.shape, w.dtype, QParams(scale, q.zero_point, q.axis), w.data)


def quantize_value(value, q, dtype):
    """A real number on tensor ``q``'s grid, clamped to ``dtype``'s range."""
    lo, hi = INT_RANGE[dtype]
    return int(np.clip(np.round(value / float(q.scale[0])) + int(q.zero_point[0]), lo, hi))
