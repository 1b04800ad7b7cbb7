"""Export a trained NNZModel to the safetensors model file that nnz loads (docs/MODEL.md)."""
import json
import math

import numpy as np
from safetensors.numpy import save_file

import common as C

S24 = float(1 << C.MUL_SHIFT)


def _q_rows(w):
    w = w.detach().double().cpu().numpy()
    s = np.maximum(np.abs(w).max(axis=1), 1e-8) / 127.0
    q = np.clip(np.floor(w / s[:, None] + 0.5), -127, 127).astype(np.int8)
    return q, s


def _mult(x):
    m = np.floor(np.asarray(x, dtype=np.float64) * S24 + 0.5)
    if np.any(m >= 2**31) or np.any(m < 1):
        raise ValueError(f"requantization multiplier out of range: {m.min()}..{m.max()}")
    return m.astype(np.int32)


def export(model, tokenizer_json: str, path: str, extra_meta=None):
    cfg = model.cfg
    t = {}
    e, se = _q_rows(model.emb)
    t["tok_emb.w"], t["tok_emb.m"] = e, _mult(se * (1 << C.RES_FRAC))
    for i, b in enumerate(model.blocks):
        p = f"layers.{i}."
        sq, sk, sv = (float(a.scale().detach()) for a in (b.qq, b.qk, b.qv))
        for name, lin, sout in (("wq", b.wq, sq), ("wk", b.wk, sk), ("wv", b.wv, sv)):
            w, s = _q_rows(lin.w)
            t[p + f"attn.{name}.w"], t[p + f"attn.{name}.m"] = w, _mult(s / C.NORM_A / sout)
        t[p + "attn.qk.m"] = _mult(np.full(cfg["n_heads"], sq * sk / math.sqrt(cfg["head_dim"]) * C.ATT_DEN))
        bias = b.bias.detach().double().cpu().numpy()
        t[p + "attn.bias"] = np.floor(bias * C.ATT_DEN + 0.5).astype(np.int32)
        w, s = _q_rows(b.wo.w)
        t[p + "attn.wo.w"], t[p + "attn.wo.m"] = w, _mult(s * sv * (1 << C.RES_FRAC))
        w, s = _q_rows(b.w1.w)
        t[p + "mlp.w1.w"], t[p + "mlp.w1.m"] = w, _mult(s / C.NORM_A * C.GELU_IN_DEN)
        w, s = _q_rows(b.w2.w)
        t[p + "mlp.w2.w"], t[p + "mlp.w2.m"] = w, _mult(s / C.GELU_OUT_DEN * (1 << C.RES_FRAC))
    w, s = _q_rows(model.head.w)
    t["head.w"], t["head.m"] = w, _mult(s / C.NORM_A * C.OUT_DEN)
    t["lut.gelu"] = np.array(C.GELU, dtype=np.int8)
    t["lut.exp_attn"] = np.array(C.ATT_EXP, dtype=np.int32)
    t["lut.exp_out"] = np.array(C.OUT_EXP, dtype=np.int32)
    meta = {
        "nnz.format": "nnz-model",
        "nnz.arith": str(C.ARITH_VERSION),
        "nnz.config": json.dumps({k: cfg[k] for k in ("vocab", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_ff", "window")}, sort_keys=True),
        "nnz.tokenizer": tokenizer_json,
    }
    if extra_meta:
        meta.update(extra_meta)
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, path, metadata=meta)
