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
weights. Each aten op maps to one reader function (pt2_ops.py, pt2_ops_layout.py; the walker is
pt2_walk.py) that emits one source op (see ``ops/__init__.py``), as the program has it: an op
reading a dequantized value reads the quantized tensor, and a ``quantize`` op stands where
PyTorch quantizes. The source pass ``passes.qdq.fold_qdq`` (api.py runs it next) then quantizes
an op when all its activation inputs are quantized and every reader of its output quantizes it
the same way (directly, or after a relu/hardtanh/clamp, which commutes with quantization); every
other op runs in float, as it does in PyTorch.
"""
import os

from ..errors import ConversionError
from . import pt2_ops, pt2_ops_attention, pt2_ops_layout  # noqa: F401  (importing the readers registers them)
from .pt2_store import _Archive
from .pt2_walk import READERS, _Walker, _first_line  # noqa: F401  (READERS: aten target -> reader)


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
