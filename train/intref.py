"""Integer reference of the nnz model in NumPy: a second, independent implementation of
docs/MODEL.md. It produces the frequency tables that tests/reference.rs compares with the Rust
CPU backend, bit for bit.
"""
import json
import math

import numpy as np
from safetensors.numpy import load_file
from safetensors import safe_open

import common as C

I64 = np.int64


def load(path):
    t = load_file(path)
    with safe_open(path, "np") as f:
        meta = f.metadata()
    cfg = json.loads(meta["nnz.config"])
    return cfg, t, meta


def rq(acc, m):
    return (acc.astype(I64) * np.asarray(m, dtype=I64) + (1 << (C.MUL_SHIFT - 1))) >> C.MUL_SHIFT


def matmul(a, w):
    return a.astype(I64) @ w.astype(I64).T


def norm(x):
    d = x.shape[-1]
    ss = (x.astype(I64) ** 2).sum(-1)
    r = np.array([max(math.isqrt(int(v) // d), 1) for v in ss], dtype=I64)[:, None]
    return np.clip((2 * x.astype(I64) * C.NORM_A + r) // (2 * r), -127, 127)


def freq_tables(cfg, t, tokens):
    """Frequency tables for predicting tokens[0..n) of one chunk; the model reads BOS first."""
    V, D, H, HKV, DH, W = (cfg[k] for k in ("vocab", "d_model", "n_heads", "n_kv_heads", "head_dim", "window"))
    bos = V - 1
    seq = np.array([bos] + list(tokens[:-1]), dtype=I64) if len(tokens) else np.zeros(0, I64)
    T = len(seq)
    if T == 0:
        return np.zeros((0, V), I64)
    x = np.clip(rq(t["tok_emb.w"][seq].astype(I64), t["tok_emb.m"][seq][:, None]), -C.RES_MAX, C.RES_MAX)
    pos = np.arange(T)
    dist = pos[:, None] - pos[None, :]
    valid = (dist >= 0) & (dist < W)
    exp_attn = t["lut.exp_attn"].astype(I64)
    gelu = t["lut.gelu"].astype(I64)
    for l in range(cfg["n_layers"]):
        p = f"layers.{l}."
        a = norm(x)
        q = np.clip(rq(matmul(a, t[p + "attn.wq.w"]), t[p + "attn.wq.m"]), -127, 127).reshape(T, H, DH)
        k = np.clip(rq(matmul(a, t[p + "attn.wk.w"]), t[p + "attn.wk.m"]), -127, 127).reshape(T, HKV, DH)
        v = np.clip(rq(matmul(a, t[p + "attn.wv.w"]), t[p + "attn.wv.m"]), -127, 127).reshape(T, HKV, DH)
        o = np.zeros((T, H, DH), I64)
        for h in range(H):
            g = h // (H // HKV)
            s = q[:, h, :] @ k[:, g, :].T
            z = rq(s, t[p + "attn.qk.m"][h]) + t[p + "attn.bias"][h][np.clip(dist, 0, W - 1)]
            z = np.where(valid, z, np.iinfo(I64).min // 4)
            zmax = z.max(axis=1, keepdims=True)
            e = exp_attn[np.minimum(zmax - z, len(exp_attn) - 1)]
            e = np.where(valid, e, 0)
            S = e.sum(axis=1, keepdims=True)
            o[:, h, :] = (2 * (e @ v[:, g, :]) + S) // (2 * S)
        x = np.clip(x + rq(matmul(o.reshape(T, H * DH), t[p + "attn.wo.w"]), t[p + "attn.wo.m"]), -C.RES_MAX, C.RES_MAX)
        a = norm(x)
        hpre = np.clip(rq(matmul(a, t[p + "mlp.w1.w"]), t[p + "mlp.w1.m"]), -C.GELU_HALF, C.GELU_HALF - 1)
        gl = gelu[hpre + C.GELU_HALF]
        x = np.clip(x + rq(matmul(gl, t[p + "mlp.w2.w"]), t[p + "mlp.w2.m"]), -C.RES_MAX, C.RES_MAX)
    a = norm(x)
    logits = rq(matmul(a, t["head.w"]), t["head.m"])
    exp_out = t["lut.exp_out"].astype(I64)
    lmax = logits.max(axis=1, keepdims=True)
    e = exp_out[np.minimum(lmax - logits, len(exp_out) - 1)]
    S = e.sum(axis=1, keepdims=True)
    return 1 + (e * (C.FREQ_BUDGET - V)) // S


def cost_bits(freqs, tokens):
    f = freqs[np.arange(len(tokens)), np.asarray(tokens)]
    return float(np.sum(np.log2(freqs.sum(axis=1) / f)))
