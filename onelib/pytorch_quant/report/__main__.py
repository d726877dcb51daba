"""``python -m onelib.pytorch_quant.report MODEL ...`` (see ``cli``)."""
import sys

from .cli import main

sys.exit(main())
