"""Tiny transformer-era models built in code (issue 10), and the recipes that quantize them.

No downloads: every model is defined here with seeded random weights and sizes small enough that
each recipe runs in a few seconds. The module structure mimics the torchvision / HF model it is
named after, so module paths (``features.1.0.block.0.2``) look like the real ones.

======================  ===================================================================
name                    what it exercises
======================  ===================================================================
vit                     patch conv, class token (``expand`` + ``cat`` with a parameter),
                        position embedding add, LayerNorm, q @ k^T, softmax, @ v, GELU (erf)
swin                    torchvision-style shifted window attention: ``roll``, window
                        partition (view/permute), relative position bias (index of a
                        parameter), attention mask built in forward (``new_zeros``, slice
                        fill, ``!=``, ``masked_fill``), LayerNorm over channels-last
convnext                ConvNeXt block: depthwise 7x7, permute to channels-last, LayerNorm,
                        Linear, GELU, layer scale, permute back, residual; LayerNorm2d head
efficientnet            MBConv with BN + SiLU, squeeze-excitation (SiLU, sigmoid, mul)
bert                    int64 token ids + int64 attention mask, word/position embedding,
                        LayerNorm, scaled_dot_product_attention with an additive mask,
                        GELU (tanh approximation), pooler tanh
transformer_encoder     ``nn.TransformerEncoder`` (batch_first, 2 layers)
mobilevit               MobileViT block: conv, unfold to patches (reshape/permute),
                        transformer layer (SiLU MLP), fold back, cat with the input, conv
gpt                     int64 token ids, scaled_dot_product_attention(is_causal=True),
                        log_softmax over the vocabulary
======================  ===================================================================

Recipes (``RECIPES``), each ``recipe(name, folder=None) -> Built``:

* ``xnnpack``: PT2E with torchao's XNNPACKQuantizer (per-channel symmetric int8 weights, int8
  activations), ``convert_pt2e`` then ``torch.export``.
* ``x86``: PT2E with X86InductorQuantizer (uint8 activations on conv/linear inputs only).
* ``fx``: ``prepare_fx``/``convert_fx`` with the x86 qconfig mapping, ``torch.jit.trace``, saved.
* ``qat``: ``prepare_qat_pt2e`` with the XNNPACK QAT config, two SGD steps,
  ``move_exported_model_to_eval``, ``convert_pt2e``, ``torch.export`` (``QAT_MODELS``).

What PyTorch refuses (torch 2.13), kept as findings rather than worked around: ``swin`` and ``bert``
through ``fx`` (the mask is built by slice assignment in forward; the position ids are sliced by a
traced size). ``transformer_encoder`` through ``fx`` traces nn.TransformerEncoder's fused fast path
(``aten::_transformer_encoder_layer_fwd``) unless ``torch.backends.mha.set_fastpath_enabled(False)``.

``Built.artifact`` is what ``onelib.pytorch_quant.api.convert`` takes: an ExportedProgram for the
PT2E recipes (also saved as ``.pt2`` when a folder is given) or a TorchScript file path for FX.
"""
import copy
import os
import warnings
from collections import namedtuple

import torch
import torch.nn as nn
import torch.nn.functional as F

import pt2models

warnings.filterwarnings("ignore", message=r"(?s).*(deprecated|reduce_range)", category=UserWarning)

__all__ = ["MODELS", "RECIPES", "QAT_MODELS", "Built", "make_model", "example_inputs",
           "calibration", "build"]

Built = namedtuple("Built", "name recipe kind artifact path inputs")
"""kind: 'pt2' (artifact is an ExportedProgram) or 'torchscript' (artifact is a file path)."""

D = 16          # embedding width of every transformer here
HEADS = 2
VOCAB = 32
SEQ = 8


def _init(model, seed):
    """Seeded weights for every parameter (not only conv/linear) and BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if p.dim() >= 2 and leaf == "weight" and not name.endswith("embedding.weight") \
                    and "embeddings" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in) ** 0.5)
            elif "in_proj_weight" in leaf:
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / p.shape[1]) ** 0.5)
            elif leaf == "weight" and p.dim() == 1:      # norm scales
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif leaf.endswith("bias") and p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif leaf == "layer_scale":
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.25)
            else:                                          # tokens, embeddings, bias tables
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


# ------------------------------------------------------------------------------ shared pieces
class SelfAttention(nn.Module):
    """Multi-head self-attention written out: qkv linear, heads by reshape/permute, q @ k^T * s,
    optional additive mask, softmax, @ v, merge heads, projection (ViT / Swin / MobileViT)."""

    def __init__(self, dim=D, heads=HEADS):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5      # a Python float, as timm keeps it
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, bias=None):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        if bias is not None:
            attn = attn + bias
        attn = attn.softmax(dim=-1)
        y = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, c)
        return self.proj(y)


class Mlp(nn.Module):
    def __init__(self, dim=D, hidden=2 * D, act=None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act or nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class PreNormBlock(nn.Module):
    def __init__(self, dim=D, act=None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 2 * dim, act)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


# ------------------------------------------------------------------------------ ViT
class ViT(nn.Module):
    def __init__(self, img=16, patch=4, classes=10):
        super().__init__()
        n = (img // patch) ** 2
        self.conv_proj = nn.Conv2d(3, D, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embedding = nn.Parameter(torch.zeros(1, n + 1, D))
        self.encoder = nn.Sequential(PreNormBlock(), PreNormBlock())
        self.ln = nn.LayerNorm(D)
        self.head = nn.Linear(D, classes)

    def forward(self, x):
        x = self.conv_proj(x)
        b = x.shape[0]
        x = x.reshape(b, D, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(b, -1, -1), x], dim=1)
        x = self.encoder(x + self.pos_embedding)
        return self.head(self.ln(x)[:, 0])


# ------------------------------------------------------------------------------ Swin
class ShiftedWindowAttention(nn.Module):
    """torchvision's shifted_window_attention, reduced: window 4, shift 2, one feature map size."""

    def __init__(self, dim=D, window=4, shift=2, heads=HEADS):
        super().__init__()
        self.window, self.shift, self.heads = window, shift, heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
        flat = torch.flatten(coords, 1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += window - 1
        rel[:, :, 1] += window - 1
        rel[:, :, 0] *= 2 * window - 1
        self.register_buffer("relative_position_index", rel.sum(-1).flatten(), persistent=False)

    def forward(self, x):
        b, h, w, c = x.shape
        ws, s = self.window, self.shift
        x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        nw = (h // ws) * (w // ws)
        x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nw, ws * ws, c)
        qkv = self.qkv(x).reshape(x.size(0), x.size(1), 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = q.matmul(k.transpose(-2, -1))
        bias = self.relative_position_bias_table[self.relative_position_index]
        bias = bias.view(ws * ws, ws * ws, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        attn = attn + bias
        # the attention mask as torchvision builds it, in forward
        mask = x.new_zeros((h, w))
        slices = ((0, -ws), (-ws, -s), (-s, None))
        count = 0
        for hs in slices:
            for wsl in slices:
                mask[hs[0]:hs[1], wsl[0]:wsl[1]] = count
                count += 1
        mask = mask.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(nw, ws * ws)
        mask = mask.unsqueeze(1) - mask.unsqueeze(2)
        mask = mask.masked_fill(mask != 0, float(-100.0)).masked_fill(mask == 0, float(0.0))
        attn = attn.view(x.size(0) // nw, nw, self.heads, x.size(1), x.size(1))
        attn = attn + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, self.heads, x.size(1), x.size(1))
        attn = F.softmax(attn, dim=-1)
        x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), c)
        x = self.proj(x)
        x = x.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return torch.roll(x, shifts=(s, s), dims=(1, 2))


class SwinBlock(nn.Module):
    def __init__(self, dim=D):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 2 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Swin(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, D, 2, stride=2), Permute(0, 2, 3, 1), nn.LayerNorm(D)),
            SwinBlock())
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, classes)

    def forward(self, x):
        x = self.norm(self.features(x))
        return self.head(x.mean((1, 2)))


class Permute(nn.Module):
    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


# ------------------------------------------------------------------------------ ConvNeXt
class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    def __init__(self, dim=D):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute(0, 2, 3, 1), nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), Permute(0, 3, 1, 2))
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, x):
        return x + self.layer_scale * self.block(x)


class ConvNeXt(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, D, 4, stride=4), LayerNorm2d(D, eps=1e-6)),
            nn.Sequential(CNBlock(), CNBlock()))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(D, eps=1e-6), nn.Flatten(1), nn.Linear(D, classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


# ------------------------------------------------------------------------------ EfficientNet
def _cna(cin, cout, k=3, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, c, squeeze):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.activation = nn.SiLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x):
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return s * x


class MBConv(nn.Module):
    def __init__(self, cin, cout, expand, stride):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = []
        if expand != 1:
            layers.append(_cna(cin, hidden, 1))
        layers += [_cna(hidden, hidden, 3, stride, groups=hidden), SqueezeExcitation(hidden, max(1, cin // 4)),
                   _cna(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return y + x if self.use_res else y


class EfficientNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            _cna(3, 8, 3, 2),
            nn.Sequential(MBConv(8, 8, 1, 1)),
            nn.Sequential(MBConv(8, 12, 4, 2), MBConv(12, 12, 4, 1)),
            _cna(12, 32, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ------------------------------------------------------------------------------ BERT
class BertSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(D, D)
        self.key = nn.Linear(D, D)
        self.value = nn.Linear(D, D)

    def _heads(self, x):
        return x.view(x.size(0), x.size(1), HEADS, D // HEADS).transpose(1, 2)

    def forward(self, x, mask):
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return y.transpose(1, 2).reshape(x.size(0), x.size(1), D)


class BertLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = BertSelfAttention()
        self.attention_output = nn.Linear(D, D)
        self.attention_norm = nn.LayerNorm(D, eps=1e-12)
        self.intermediate = nn.Linear(D, 2 * D)
        self.intermediate_act = nn.GELU(approximate="tanh")
        self.output = nn.Linear(2 * D, D)
        self.output_norm = nn.LayerNorm(D, eps=1e-12)

    def forward(self, x, mask):
        x = self.attention_norm(x + self.attention_output(self.attention(x, mask)))
        return self.output_norm(x + self.output(self.intermediate_act(self.intermediate(x))))


class Bert(nn.Module):
    def __init__(self, classes=2):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, D)
        self.position_embeddings = nn.Embedding(SEQ, D)
        self.register_buffer("position_ids", torch.arange(SEQ).unsqueeze(0), persistent=False)
        self.embeddings_norm = nn.LayerNorm(D, eps=1e-12)
        self.layer = nn.Sequential(BertLayer(), BertLayer())
        self.pooler = nn.Linear(D, D)
        self.pooler_act = nn.Tanh()
        self.classifier = nn.Linear(D, classes)

    def forward(self, input_ids, attention_mask):
        x = self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids[:, :input_ids.size(1)])
        x = self.embeddings_norm(x)
        mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layer:
            x = layer(x, mask)
        return self.classifier(self.pooler_act(self.pooler(x[:, 0])))


# ------------------------------------------------------------------------------ GPT (causal sdpa)
class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D)
        self.c_attn = nn.Linear(D, 3 * D)
        self.c_proj = nn.Linear(D, D)
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, VOCAB, bias=False)

    def forward(self, input_ids):
        x = self.wte(input_ids)
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(D, dim=2)
        q, k, v = [z.view(b, t, HEADS, c // HEADS).transpose(1, 2) for z in (q, k, v)]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, c))
        return F.log_softmax(self.lm_head(self.ln_f(x)), dim=-1)


# ------------------------------------------------------------------------------ nn.TransformerEncoder
class TransformerEncoderModel(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        layer = nn.TransformerEncoderLayer(D, HEADS, 2 * D, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(D, classes)

    def forward(self, x):
        return self.head(self.encoder(x).mean(1))


# ------------------------------------------------------------------------------ MobileViT
class MobileViTBlock(nn.Module):
    def __init__(self, c=8, d=D, patch=2):
        super().__init__()
        self.patch = patch
        self.local_rep = nn.Sequential(_cna(c, c, 3), nn.Conv2d(c, d, 1, bias=False))
        self.transformer = nn.Sequential(PreNormBlock(d, act=nn.SiLU()), nn.LayerNorm(d))
        self.conv_proj = _cna(d, c, 1)
        self.fusion = _cna(2 * c, c, 3)

    def forward(self, x):
        y = self.local_rep(x)
        b, d, h, w = y.shape
        p = self.patch
        # unfold: (b, d, h, w) -> (b * p * p, n_patches, d)
        y = y.reshape(b, d, h // p, p, w // p, p).permute(0, 3, 5, 2, 4, 1).reshape(b * p * p, -1, d)
        y = self.transformer(y)
        # fold back
        y = y.reshape(b, p, p, h // p, w // p, d).permute(0, 5, 3, 1, 4, 2).reshape(b, d, h, w)
        return self.fusion(torch.cat([x, self.conv_proj(y)], 1))


class MobileViT(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = _cna(3, 8, 3, 2)
        self.block = MobileViTBlock()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))


# ------------------------------------------------------------------------------ registry
def _tokens(g):
    return torch.randint(0, VOCAB, (1, SEQ), generator=g)


def _bert_inputs(g):
    ids = _tokens(g)
    mask = torch.ones(1, SEQ, dtype=torch.int64)
    mask[:, SEQ - 1 - int(torch.randint(0, 3, (1,), generator=g)):] = 0
    return ids, mask


# name -> (factory, inputs(generator) -> tuple of tensors)
MODELS = {
    "vit": (ViT, lambda g: (torch.randn(1, 3, 16, 16, generator=g),)),
    "swin": (Swin, lambda g: (torch.randn(1, 3, 16, 16, generator=g),)),
    "convnext": (ConvNeXt, lambda g: (torch.randn(1, 3, 16, 16, generator=g),)),
    "efficientnet": (EfficientNet, lambda g: (torch.randn(1, 3, 16, 16, generator=g),)),
    "bert": (Bert, _bert_inputs),
    "transformer_encoder": (TransformerEncoderModel, lambda g: (torch.randn(1, SEQ, D, generator=g),)),
    "mobilevit": (MobileViT, lambda g: (torch.randn(1, 3, 16, 16, generator=g),)),
    "gpt": (GPT, lambda g: (_tokens(g),)),
}
QAT_MODELS = ("efficientnet", "vit")


def make_model(name, seed=0):
    return _init(MODELS[name][0](), seed)


def example_inputs(name, seed=0):
    return MODELS[name][1](torch.Generator().manual_seed(seed))


def calibration(name, n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [MODELS[name][1](g) for _ in range(n)]


# ------------------------------------------------------------------------------ recipes
def _export(model, example):
    """strict=True as pt2models does (XNNPACK's cat/pool annotators need source_fn_stack); a
    model dynamo cannot trace strictly falls back to a non-strict export."""
    try:
        return torch.export.export(model, example, strict=True)
    except Exception:  # noqa: BLE001  any dynamo failure: the non-strict export is what users get
        return torch.export.export(model, example, strict=False)


def _finish_pt2(name, recipe, converted, example, folder):
    ep = torch.export.export(converted, example)
    path = None
    if folder:
        path = os.path.join(folder, "%s_%s.pt2" % (name, recipe))
        torch.export.save(ep, path)
    return Built(name, recipe, "pt2", ep, path, example)


def _ptq_pt2e(name, recipe, quantizer, folder, seed):
    import torch.ao.quantization.fx._decomposed  # noqa: F401  registers quantized_decomposed ops
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    model, example = make_model(name, seed), example_inputs(name, seed)
    prepared = prepare_pt2e(_export(model, example).module(), quantizer)
    with torch.no_grad():
        for b in calibration(name, seed=seed + 1):
            prepared(*b)
    return _finish_pt2(name, recipe, convert_pt2e(prepared), example, folder)


def xnnpack(name, folder=None, seed=0):
    return _ptq_pt2e(name, "xnnpack", pt2models._xnnpack(True), folder, seed)


def x86(name, folder=None, seed=0):
    return _ptq_pt2e(name, "x86", pt2models._x86(), folder, seed)


def qat(name, folder=None, seed=0):
    import torch.ao.quantization.fx._decomposed  # noqa: F401
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    model, example = make_model(name, seed).train(), example_inputs(name, seed)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
    prepared = prepare_qat_pt2e(torch.export.export(model, example).module(), quantizer)
    opt = torch.optim.SGD(prepared.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed + 2)
    for b in calibration(name, n=2, seed=seed + 1):
        opt.zero_grad()
        y = prepared(*b)
        (y - torch.randn(y.shape, generator=g)).pow(2).mean().backward()
        opt.step()
    move_exported_model_to_eval(prepared)
    with torch.no_grad():
        for b in calibration(name, seed=seed + 3):
            prepared(*b)
    return _finish_pt2(name, "qat", convert_pt2e(prepared), example, folder)


def fx(name, folder=None, seed=0):
    """FX PTQ (x86 qconfig mapping) -> convert_fx -> torch.jit.trace -> saved TorchScript."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    model, example = make_model(name, seed), example_inputs(name, seed)
    prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), example)
    with torch.no_grad():
        for b in calibration(name, seed=seed + 1):
            prepared(*b)
    converted = convert_fx(prepared)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(converted, example, check_trace=False)
    path = None
    if folder:
        path = os.path.join(folder, "%s_fx.pt" % name)
        torch.jit.save(traced, path)
    return Built(name, "fx", "torchscript", path if path else traced, path, example)


RECIPES = {"xnnpack": xnnpack, "x86": x86, "fx": fx, "qat": qat}


def build(name, recipe, folder=None, seed=0):
    """Quantize ``name`` with ``recipe``; a ``Built`` (raises what PyTorch raises)."""
    if recipe == "qat" and name not in QAT_MODELS:
        raise ValueError("qat is built for %s only" % ", ".join(QAT_MODELS))
    return RECIPES[recipe](name, folder, seed)


def float_model(name, seed=0):
    """The float model (for a float reference or a top-1 comparison)."""
    return copy.deepcopy(make_model(name, seed))

