"""Source ops (what frontends emit) and their lowering to circle.

Source-stage vocabulary. Shapes are PyTorch's (NCHW). Every op has exactly one output unless
noted. An activation tensor carries ``qparams`` (per-tensor) when quantized, ``None`` when the
op runs in float. Constants (weights, bias) are ``Tensor`` with ``data``.

=====================  ======================================  ==========================================
kind                   inputs                                  attrs
=====================  ======================================  ==========================================
quantize               x (float32)                             output dtype/qparams = the quantizer's
dequantize             x (quantized)                           output float32, qparams None
conv2d                 x, weight (int8/uint8 OIHW, QParams     stride[2], padding[2], dilation[2], groups,
                       axis 0 or per-tensor), bias (float32    act (None | "relu")
                       [O] const, int32 const with qparams,
                       or None)
linear                 x, weight [O, I], bias                  act
add, mul               a, b (broadcasting)                     act
add_scalar             x                                       scalar (float), act; output qparams derived
mul_scalar             x                                       (same as add_scalar; ``@qparams_rule``)
cat                    x0, x1, ...                             dim
hardtanh               x                                       min, max (relu = 0, inf; relu6 = 0, 6)
sigmoid, hardswish     x                                       -
max_pool2d             x                                       kernel[2], stride[2], padding[2], dilation[2], ceil_mode
avg_pool2d             x                                       kernel, stride, padding, ceil_mode,
                                                               count_include_pad, divisor_override
adaptive_avg_pool2d    x                                       output_size[2] (None entries keep the size)
adaptive_max_pool2d    x                                       output_size[2] (float in PyTorch: no quantized kernel)
mean                   x                                       dims (list), keepdim
flatten                x                                       start, end
reshape                x                                       shape (may hold one -1)
hardsigmoid, tanh      x                                       - (output on PyTorch's fixed grid)
leaky_relu             x                                       negative_slope
elu                    x                                       alpha, scale, input_scale
softmax                x                                       dim
permute                x                                       dims (transpose/swapaxes become permute)
gather                 x                                       dim, index (list): x[:, a:b:step], step > 1
split                  x -> one output per piece               dim, sizes (chunk/split/split_with_sizes)
upsample               x                                       mode ("nearest" | "nearest_exact" |
                                                               "bilinear"), size[2] or None, scales[2]
                                                               or None, align_corners
constant_pad           x                                       pad (PyTorch's flat list, last dim
                                                               first), value (float)
conv_transpose2d       x, weight ([I, O/g, kh, kw] as PyTorch  stride, padding, output_padding,
                       stores it), bias                        dilation, groups, act
conv1d                 x [N, C, L], weight [O, I/g, 1, k]      stride, padding, dilation as PyTorch
                       (PyTorch packs conv1d as 2-D), bias     packs them ([1, s], [0, p], [1, d]),
                                                               groups, act
batch_norm2d           x, weight, bias, running_mean,          eps, act
                       running_var (float32 [C] consts)
binary_const           x (float32), c (float32 const)          op ("add" | "sub" | "mul" | "div"), reverse
                                                               (c <op> x); float preprocessing only
=====================  ======================================  ==========================================

Each kind has exactly one shape rule (``@shape``) and one lowering (``@lowering``) in one module
of this package (tests/test_op_table.py checks this table against them);
``registry.FLOAT_CAPABLE`` lists kinds whose lowering also handles float tensors.
"""
