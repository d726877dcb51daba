"""`python -m onelib.pytorch_quant.verify [--target onert|luci] FILE.circle`"""
import sys

from . import main

sys.exit(main())
