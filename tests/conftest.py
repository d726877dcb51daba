"""Make the repo root (for ``onelib.pytorch_quant``) and tests/ (for the oracles) importable."""
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (ROOT, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

# torch.ao.quantization and torch.jit print deprecation warnings on every use; they say nothing
# about the converter.
warnings.filterwarnings("ignore", category=DeprecationWarning)
