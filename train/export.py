"""Export a trained NNZModel to the safetensors model file that nnz loads (docs/MODEL.md)."""
import json
import math

import numpy as np
from safetensors.numpy import save_file

import common as C
import intref

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


def import_model(path, model):
    """Load an exported model file into `model` (an NNZModel of the file's shape) for training on:
    the inverse of `export`. Each int8 row times its scale gives the float row back, and exporting
    the result gives the same int8 rows (each row's largest weight is ±127 again). Where the file
    keeps only a product of scales (Q and K: `attn.qk.m`; V and the output projection:
    `attn.wo.m`) any split gives the same integer model; this one gives Q and K equal scales and V
    the scale of Q. Returns the file's tokenizer (JSON)."""
    cfg, t, meta = intref.load(path)
    want = {k: model.cfg[k] for k in cfg}
    if want != cfg:
        raise SystemExit(f"--init: {path} is a model of shape {json.dumps(cfg)}, not {json.dumps(want)}")
    import torch

    def rows(w, m, per):  # float rows from int8 rows and their multipliers over `per`
        s = np.asarray(m, dtype=np.float64) / S24 / per
        return torch.tensor(w.astype(np.float64) * s[:, None], dtype=torch.float32)

    with torch.no_grad():
        model.emb.copy_(rows(t["tok_emb.w"], t["tok_emb.m"], 1 << C.RES_FRAC))
        for i, b in enumerate(model.blocks):
            p = f"layers.{i}."
            qk = float(t[p + "attn.qk.m"][0]) / S24 / C.ATT_DEN * math.sqrt(cfg["head_dim"])
            sq = sk = sv = math.sqrt(qk)
            for lin, aq, name, s in ((b.wq, b.qq, "wq", sq), (b.wk, b.qk, "wk", sk), (b.wv, b.qv, "wv", sv)):
                lin.w.copy_(rows(t[p + f"attn.{name}.w"], t[p + f"attn.{name}.m"], 1 / (C.NORM_A * s)))
                aq.log_s.fill_(math.log(s))
            b.bias.copy_(torch.tensor(t[p + "attn.bias"].astype(np.float64) / C.ATT_DEN, dtype=torch.float32))
            b.wo.w.copy_(rows(t[p + "attn.wo.w"], t[p + "attn.wo.m"], sv * (1 << C.RES_FRAC)))
            b.w1.w.copy_(rows(t[p + "mlp.w1.w"], t[p + "mlp.w1.m"], C.GELU_IN_DEN / C.NORM_A))
            b.w2.w.copy_(rows(t[p + "mlp.w2.w"], t[p + "mlp.w2.m"], (1 << C.RES_FRAC) / C.GELU_OUT_DEN))
        model.head.w.copy_(rows(t["head.w"], t["head.m"], C.OUT_DEN / C.NORM_A))
    return meta["nnz.tokenizer"]

