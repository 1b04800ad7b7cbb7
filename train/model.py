"""The nnz transformer in PyTorch, with quantization-aware training that simulates the integer
arithmetic of docs/MODEL.md (int8 weights per output row, int8 activations at the fixed scales of
common.py, learned scales for q/k/v, quantized attention and output logits).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import common as C


def ste_round(x):
    return x + (torch.floor(x + 0.5) - x).detach()


def fq_clamp(x, den, lo=-127, hi=127):
    """Fake-quantize to multiples of 1/den, clamped to [lo, hi] units (gradient passes inside)."""
    return torch.clamp(ste_round(x * den), lo, hi) / den


def weight_scale(w):
    return w.detach().abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0


def fq_weight(w):
    s = weight_scale(w)
    return torch.clamp(ste_round(w / s), -127, 127) * s


class ActQuant(nn.Module):
    """int8 activation with a learned scale (LSQ-style)."""

    def __init__(self, init=0.05):
        super().__init__()
        self.log_s = nn.Parameter(torch.tensor(math.log(init)))

    def scale(self):
        return self.log_s.exp()

    def forward(self, x, qat):
        if not qat:
            return x
        s = self.scale()
        return torch.clamp(ste_round(x / s), -127, 127) * s


class Linear(nn.Module):
    def __init__(self, n_in, n_out, std):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_out, n_in) * std)

    def forward(self, x, qat):
        return F.linear(x, fq_weight(self.w) if qat else self.w)


def norm(x, qat):
    rms = torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    y = x / rms
    return fq_clamp(y, C.NORM_A) if qat else y


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, h, hkv, dh, f, w = (cfg[k] for k in ("d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "window"))
        self.h, self.hkv, self.dh, self.w = h, hkv, dh, w
        std = 0.02
        out_std = std / math.sqrt(2 * cfg["n_layers"])
        self.wq = Linear(d, h * dh, std)
        self.wk = Linear(d, hkv * dh, std)
        self.wv = Linear(d, hkv * dh, std)
        self.wo = Linear(h * dh, d, out_std)
        self.w1 = Linear(d, f, std)
        self.w2 = Linear(f, d, out_std)
        self.qq, self.qk, self.qv = ActQuant(0.05), ActQuant(0.05), ActQuant(0.05)
        slopes = torch.tensor([2.0 ** (-8.0 * (i + 1) / h) for i in range(h)])
        self.bias = nn.Parameter(-slopes[:, None] * torch.arange(w)[None, :].float())

    def forward(self, x, qat):
        B, T, _ = x.shape
        a = norm(x, qat)
        q = self.qq(self.wq(a, qat), qat).view(B, T, self.h, self.dh).transpose(1, 2)
        k = self.qk(self.wk(a, qat), qat).view(B, T, self.hkv, self.dh).transpose(1, 2)
        v = self.qv(self.wv(a, qat), qat).view(B, T, self.hkv, self.dh).transpose(1, 2)
        rep = self.h // self.hkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        logits = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
        pos = torch.arange(T, device=x.device)
        dist = pos[:, None] - pos[None, :]
        valid = (dist >= 0) & (dist < self.w)
        bias = self.bias[:, dist.clamp(0, self.w - 1)]  # (H, T, T)
        logits = logits + bias[None]
        if qat:
            logits = ste_round(logits * C.ATT_DEN) / C.ATT_DEN
        logits = logits.masked_fill(~valid, float("-inf"))
        p = torch.softmax(logits, dim=-1)
        o = p @ v
        if qat:
            o = torch.clamp(ste_round(o / self.qv.scale()), -127, 127) * self.qv.scale()
        o = o.transpose(1, 2).reshape(B, T, self.h * self.dh)
        x = x + self.wo(o, qat)
        a = norm(x, qat)
        hpre = self.w1(a, qat)
        if qat:
            hpre = fq_clamp(hpre, C.GELU_IN_DEN, -C.GELU_HALF, C.GELU_HALF - 1)
            g = fq_clamp(F.gelu(hpre), C.GELU_OUT_DEN)
        else:
            g = F.gelu(hpre)
        return x + self.w2(g, qat)


class NNZModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Parameter(torch.randn(cfg["vocab"], cfg["d_model"]) * 0.02 * math.sqrt(cfg["d_model"]) / 4)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg["n_layers"]))
        self.head = Linear(cfg["d_model"], cfg["vocab"], 0.02)

    def forward(self, idx, qat=False):
        e = fq_weight(self.emb) if qat else self.emb
        x = e[idx]
        for b in self.blocks:
            x = b(x, qat)
        a = norm(x, qat)
        return self.head(a, qat)
