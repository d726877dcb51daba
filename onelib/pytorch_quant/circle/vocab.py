"""The circle vocabulary: every circle op this converter writes, with its builtin code and options
table, and the enums and integer ranges circle fixes. The one home of these facts: lowering
(``LowerCtx.emit`` checks op and option names against ``OPS`` when called), circle passes and the
writer read them here. Facts of the circle schema 0.10 (tests/test_circle_vocab.py checks them
against the circle_schema package).
"""

# circle op name -> (BuiltinOperator code, options table or None, option fields the table has).
# An op's ``attrs`` are its option fields by their object-API names (``strideW``,
# ``fusedActivationFunction``); an op without an options table takes no attrs.
_POOL = ("filterHeight", "filterWidth", "fusedActivationFunction", "padding", "strideH", "strideW")
OPS = {
    "ADD": (0, "AddOptions", ("fusedActivationFunction", "potScaleInt16")),
    "AVERAGE_POOL_2D": (1, "Pool2DOptions", _POOL),
    "CONCATENATION": (2, "ConcatenationOptions", ("axis", "fusedActivationFunction")),
    "CONV_2D": (3, "Conv2DOptions", ("dilationHFactor", "dilationWFactor", "fusedActivationFunction", "padding",
                                     "quantizedBiasType", "strideH", "strideW")),
    "DEPTHWISE_CONV_2D": (4, "DepthwiseConv2DOptions", ("depthMultiplier", "dilationHFactor", "dilationWFactor",
                                                        "fusedActivationFunction", "padding", "strideH", "strideW")),
    "DEQUANTIZE": (6, None, ()),
    "FULLY_CONNECTED": (9, "FullyConnectedOptions", ("asymmetricQuantizeInputs", "fusedActivationFunction",
                                                     "keepNumDims", "quantizedBiasType", "weightsFormat")),
    "LOGISTIC": (14, None, ()),
    "MAX_POOL_2D": (17, "Pool2DOptions", _POOL),
    "MUL": (18, "MulOptions", ("fusedActivationFunction",)),
    "RELU": (19, None, ()),
    "RELU_N1_TO_1": (20, None, ()),
    "RELU6": (21, None, ()),
    "RESHAPE": (22, "ReshapeOptions", ("newShape",)),
    "RESIZE_BILINEAR": (23, "ResizeBilinearOptions", ("alignCorners", "halfPixelCenters")),
    "SOFTMAX": (25, "SoftmaxOptions", ("beta",)),
    "TANH": (28, None, ()),
    "PAD": (34, "PadOptions", ()),
    "GATHER": (36, "GatherOptions", ("axis", "batchDims")),
    "TRANSPOSE": (39, "TransposeOptions", ()),
    "MEAN": (40, "ReducerOptions", ("keepDims",)),
    "SUB": (41, "SubOptions", ("fusedActivationFunction", "potScaleInt16")),
    "DIV": (42, "DivOptions", ("fusedActivationFunction",)),
    "STRIDED_SLICE": (45, "StridedSliceOptions", ("beginMask", "ellipsisMask", "endMask", "newAxisMask", "offset",
                                                  "shrinkAxisMask")),
    "EXP": (47, "ExpOptions", ()),
    "SPLIT": (49, "SplitOptions", ("numSplits",)),
    "CAST": (53, "CastOptions", ("inDataType", "outDataType")),
    "LOG_SOFTMAX": (50, "LogSoftmaxOptions", ()),
    "MAXIMUM": (55, "MaximumMinimumOptions", ()),
    "MINIMUM": (57, "MaximumMinimumOptions", ()),
    "NEG": (59, None, ()),
    "PADV2": (60, "PadV2Options", ()),
    "SLICE": (65, "SliceOptions", ()),
    "TRANSPOSE_CONV": (67, "TransposeConvOptions", ("fusedActivationFunction", "padding", "quantizedBiasType",
                                                    "strideH", "strideW")),
    "RESIZE_NEAREST_NEIGHBOR": (97, "ResizeNearestNeighborOptions", ("alignCorners", "halfPixelCenters")),
    "LEAKY_RELU": (98, "LeakyReluOptions", ("alpha",)),
    "RSQRT": (76, None, ()),
    "ABS": (101, None, ()),
    "SPLIT_V": (102, "SplitVOptions", ("numSplits",)),
    "ELU": (111, None, ()),
    "QUANTIZE": (114, None, ()),
    "HARD_SWISH": (117, "HardSwishOptions", ()),
    "BATCH_MATMUL": (126, "BatchMatMulOptions", ("adjointLhs", "adjointRhs", "asymmetricQuantizeInputs")),
    "GELU": (150, "GeluOptions", ("approximate",)),
}

# fusedActivationFunction (ActivationFunctionType): by source activation name, and the standalone
# circle op each fused code stands for
ACT = {None: 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3}
ACT_OF_OP = {"RELU": ACT["relu"], "RELU_N1_TO_1": ACT["relu_n1_to_1"], "RELU6": ACT["relu6"]}

# the real-number clamp of each standalone activation op
ACT_RANGE = {"RELU": (0.0, float("inf")), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}

# padding (Padding)
SAME, VALID = 0, 1

# tensor dtypes -> TensorType (CastOptions' inDataType/outDataType)
TENSOR_TYPE = {"float32": 0, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7, "int8": 9}

# integer tensor dtypes -> (lowest, highest) value
INT_RANGE = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767),
             "int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}


def check_op(kind, attrs, name=""):
    """The problem with circle op ``kind`` carrying option fields ``attrs`` (None when none)."""
    entry = OPS.get(kind)
    if entry is None:
        return "internal: %s (%s) is not a circle op this converter knows (circle/vocab.py)" % (kind, name)
    bad = sorted(k for k in (attrs or {}) if k not in entry[2])
    if bad:
        return "internal: %s (%s) has no option %s (%s takes %s)" % (
            kind, name, ", ".join(bad), entry[1] or "no options table", ", ".join(entry[2]) or "none")
    return None
