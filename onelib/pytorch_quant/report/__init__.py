"""Layer-by-layer fidelity: the converted circle model against PyTorch's own quantized run.

``fidelity(source)`` converts the model, runs it in PyTorch once while reading every
intermediate quantized tensor, and for every circle tensor that has a PyTorch counterpart
reports the difference in LSB (steps of that tensor's scale) two ways:

* **per-op**: the circle op(s) that compute the tensor, cut out as a small circle model and fed
  PyTorch's own integer inputs. This isolates each op: a correct lowering is within 1 LSB (PyTorch
  x86 requantizes in float, circle kernels with an integer multiplier).
* **accumulated**: the graph cut at the tensor (the prefix that computes it) fed the model input,
  so 1-LSB steps add up through depth the way they do on the device.

Why cuts and not extra graph outputs: onert 0.1.0 returns wrong values for an intermediate
tensor exposed as an extra output (99 LSB off on a fused CONV_2D+RELU6, where the graph cut at
the same tensor is 1 LSB off). TICO's reference runtime reads extra outputs correctly (checked
against prefix cuts), so its accumulated numbers come from one run with extra outputs.

Runtimes: ``onert`` (ONE's runtime, integer kernels, in a child process), ``tico`` (TICO's
reference runtime, FAKE_QUANTIZE), or ``auto``: onert wherever it runs and is known to be right,
TICO for graphs hitting onert's known defects (``runtimes.onert_unreliable``) or that onert
refuses. Each number says which runtime produced it.

The final output is compared once more from the complete converted model (its exact bytes):
max and mean LSB, share of exact elements and top-k agreement (k = 1, 5; tie-aware: one of
circle's top-k counts when PyTorch's value there is among PyTorch's k largest).

PyTorch side: the TorchScript frontend's source record (``ir.SourceRecord``) holds the frozen
module (``record.module``) and which TorchScript value each source tensor is (``record.values``). A copy of that graph gets
a clone of each such value as an extra output; the module itself is never modified.

The .pt2 (PT2E) frontend's record holds which node of the exported graph each source tensor stands
for (``record.nodes``: a quantized tensor is the output of its ``quantize_per_tensor`` node, i.e.
PyTorch's integer codes; a float tensor is the float node, e.g. a ``dequantize_per_tensor`` or a
conv left float). The exported program itself is run (``torch.export.load``, ``ep.module()``) by a
``torch.fx.Interpreter`` that keeps every such node's output. PT2E's int8 codes become circle's
uint8 codes by the exact +128 shift (same scale, zero point + 128), as the converter writes them.
The engine does not apply: the program computes with float ops between quantize/dequantize.

Float layers (PT2E X86/Arm quantizers leave ops float between DEQUANTIZE and QUANTIZE) have no
integer grid: they are compared in float, as ``max_abs`` (max |difference| in real units) and
``range_share`` (``max_abs`` divided by the range, max - min, of PyTorch's tensor); their LSB
numbers are None. The table shows ``max_abs`` in the max column of such rows and lists both
below the table.

JSON keys (``FidelityReport.to_dict``): ``REPORT_KEYS``; each entry of ``layers``: ``LAYER_KEYS``;
its ``per_op`` / ``accumulated``: ``STATS_KEYS``; ``final``: ``FINAL_KEYS``.

The parts, by job: ``probe`` (the PyTorch side), ``compare`` (the circle side: cuts, runtimes, LSB
statistics), ``render`` (text, JSON, the chart: matplotlib, imported only to draw, optional),
``measure`` (``fidelity()``, which ties them together), ``cli`` (the command line).

CLI: ``python -m onelib.pytorch_quant.report MODEL.pt --input_shapes 1,3,16,16 [--input x.npy]
[--runtime auto|onert|tico] [--engine x86|qnnpack] [--json out.json] [--plot out.png]``, or
``python -m onelib.pytorch_quant.report MODEL.pt2 [...]`` (shapes and engine do not apply).
``--plot`` needs matplotlib; without it the chart is skipped with one line saying so.
"""
from .common import (FINAL_KEYS, LAYER_KEYS, PT2_ENGINE, REPORT_KEYS, RUNTIMES,  # noqa: F401
                     STATS_KEYS)
from .cli import build_parser, main, options_from_args  # noqa: F401
from .compare import _as_circle, _circle_bytes  # noqa: F401  (tests cut graphs and feed them)
from .measure import fidelity  # noqa: F401
from .probe import _probe_for  # noqa: F401
from .render import CHART_SKIPPED, FidelityReport  # noqa: F401

__all__ = ["fidelity", "FidelityReport", "main", "RUNTIMES", "CHART_SKIPPED",
           "REPORT_KEYS", "LAYER_KEYS", "STATS_KEYS", "FINAL_KEYS"]
