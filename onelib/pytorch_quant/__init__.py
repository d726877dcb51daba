"""one-import-pytorch-quant: PyTorch-quantized models to pre-quantized circle for ONE.

Importing this package does not import torch.
"""
__version__ = "0.1.0"


def convert(source, options=None, **kw):
    """Shortcut for ``api.convert``; keyword options build a ConvertOptions."""
    from . import api
    if options is None:
        options = api.ConvertOptions(**kw)
    return api.convert(source, options)
