"""Sweep rows of issue 10's data movement and constants (registered by tests/sweep.py as families):
roll, expand, repeat, masked_fill with a constant mask, constant pad in a .pt2, and constants
PyTorch computes in forward that the .pt2 reader folds (ViT's class token, torchvision Swin's
attention mask, a relative-position index, nn.MultiheadAttention's in-projection shape chain).
Each op between the PT2E input pool and an identity pool after it (``_post``), so XNNPACK
quantizes around it and the output is compared in integer codes."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sweep_run import ALL_FRONTENDS, PT2E, Case


def _post(y):
    return F.adaptive_avg_pool2d(y, y.shape[2:])   # windows of 1: the identity, quantized


def _roll():
    # eager quantized tensors have no roll kernel (QuantizedCPU): .pt2 only
    out = []
    for shifts, dims in (((-2, -2), (2, 3)), ((2, 2), (2, 3)), (1, 1), ((3,), (0,)), ((-1, 5), (1, 3))):
        out.append(Case("roll", dict(s=str(shifts).replace(" ", ""), d=str(dims).replace(" ", "")), (2, 3, 6, 6),
                        (lambda s_, x, s=shifts, d=dims: _post(torch.roll(x, s, d))), frontends=PT2E))
    return out


def _expand():
    out = []
    for shape, size in (((1, 3, 1, 5), (2, 3, 4, 5)), ((1, 1, 4, 1), (1, 3, 4, 5)), ((1, 3, 4, 1), (-1, -1, -1, 3))):
        out.append(Case("expand", dict(size=str(size).replace(" ", "")), shape,
                        (lambda s_, x, z=size: _post(x.expand(*z))), frontends=ALL_FRONTENDS))
    return out


def _repeat():
    out = []
    for reps in ((1, 2, 2, 1), (2, 1, 1, 3), (1, 1, 1, 1)):
        out.append(Case("repeat", dict(r="".join(map(str, reps))), (1, 3, 2, 5),
                        (lambda s_, x, r=reps: _post(x.repeat(*r))), frontends=ALL_FRONTENDS))
    return out


def _masked_fill():
    out = []
    for value, mshape in ((-1.0, (4, 5)), (2.5, (1, 3, 1, 5))):
        mask = torch.arange(int(np.prod(mshape))).reshape(mshape) % 3 == 0
        out.append(Case("masked_fill", dict(v=value, m="x".join(map(str, mshape))), (1, 3, 4, 5),
                        (lambda s_, x, m=mask, v=value: _post(x.masked_fill(m, v))), frontends=PT2E))
    return out


def _pad_pt2():
    out = []
    for pad, value in (((1, 2, 0, 1), 0.0), ((0, 0, 2, 1), 0.0), ((1, 1, 1, 1), 0.75)):
        out.append(Case("pad_pt2", dict(p="".join(map(str, pad)), v=value), (1, 3, 4, 5),
                        (lambda s_, x, p=pad, v=value: _post(F.pad(x, p, value=v))), frontends=PT2E))
    return out


class _ClassToken(nn.Module):
    """ViT's class token: a parameter expanded to the batch, concatenated in front of the tokens."""

    def __init__(self):
        super().__init__()
        self.token = nn.Parameter(torch.linspace(-1.0, 1.0, 15).reshape(1, 3, 1, 5))


def _swin_mask(x, ws=2, s=1):
    """torchvision Swin's attention mask, built in forward from shapes alone (new_zeros, slice
    assignment, view/permute, sub, masked_fill), then added to the activation."""
    h, w = x.shape[2], x.shape[3]
    mask = x.new_zeros((h, w))
    count = 0
    for hs in ((0, -ws), (-ws, -s), (-s, None)):
        for wsl in ((0, -ws), (-ws, -s), (-s, None)):
            mask[hs[0]:hs[1], wsl[0]:wsl[1]] = count
            count += 1
    mask = mask.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    mask = mask.masked_fill(mask != 0, -1.5).masked_fill(mask == 0, 0.25)
    return x + mask * 0.5


def _mha_chain(x):
    """nn.MultiheadAttention's in-projection split as torch.export writes it: unflatten(-1, [3, E]),
    unsqueeze(0), transpose(0, -2), squeeze(-2), contiguous, select x3, view."""
    t = x.flatten(2).permute(2, 0, 1)                      # (L, B, 3E)
    p = t.unflatten(-1, (3, t.shape[-1] // 3)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
    q, k, v = p[0], p[1], p[2]                             # (L, B, E) each
    y = torch.cat([v, q, k], -1).view(t.shape[0], t.shape[1], -1)
    return y.permute(1, 2, 0).reshape(x.shape)


def _constants():
    rel = torch.tensor([[0, 3, 1, 2, 2], [1, 0, 3, 3, 1], [2, 2, 0, 1, 3], [3, 1, 2, 0, 0]])
    table = torch.linspace(-0.6, 0.9, 4)
    return [
        Case("constants", dict(op="class_token_cat"), (1, 3, 4, 5),
             (lambda s_, x: _post(torch.cat([s_.ct.token.expand(x.shape[0], -1, -1, -1), x], 2))),
             lambda: {"ct": _ClassToken()}, frontends=PT2E),
        Case("constants", dict(op="swin_mask"), (1, 4, 4, 4), (lambda s_, x: _post(_swin_mask(x))), frontends=PT2E),
        Case("constants", dict(op="mha_shape_chain"), (1, 6, 2, 4), (lambda s_, x: _post(_mha_chain(x))),
             frontends=PT2E),
        Case("constants", dict(op="index_bias"), (1, 3, 4, 5), (lambda s_, x: _post(x + table[rel])), frontends=PT2E),
    ]


# (family, default-sample size, rows)
FAMILIES = [("roll", 4, _roll), ("expand", 4, _expand), ("repeat", 3, _repeat), ("masked_fill", 2, _masked_fill),
            ("pad_pt2", 3, _pad_pt2), ("constants", 4, _constants)]
