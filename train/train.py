"""Train nnz's default model: tokenizer, quantization-aware transformer, export, reference vectors.

    python3 train/train.py --config cpu   --out train/out/cpu     # what ships today (2-core CPU)
    python3 train/train.py --config smoke --out /tmp/nnz-smoke    # minutes-sized check of the pipeline
    python3 train/train.py --config gpu   --out train/out/gpu     # the real model, on a GPU
    python3 train/train.py --config cpu   --out train/out/cpu --resume   # go on where it stopped

Every run is seeded; with the same corpus, config and torch version it reproduces the same model
(the same tensors and metadata).
Every `--checkpoint-every` steps the run saves OUT/checkpoint.pt (weights, optimizer, data
sampler, random states, tokenizer); `--resume` continues from it and ends with the same model an
uninterrupted run makes. `--resume --steps N` with a larger N trains on: the learning-rate schedule
and the start of quantization-aware training follow the new step count from the resumed step.
Checkpoints stay where they were made; `--init MODEL` starts from an exported model file (such as
models/default.safetensors) instead, quantization-aware from the first step, so training can go on
in a later session from what shipped (`--data-seed N`: on another sample of the corpus):

    python3 train/train.py --config cpu --out train/out/next --init models/default.safetensors \
        --data-seed 1 --steps 3600 --set lr=0.0012 corpus_bytes=128000000
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import data  # noqa: E402
import export  # noqa: E402
import intref  # noqa: E402
from model import NNZModel  # noqa: E402

CONFIGS = {
    # the test model in testdata/: two layers, grouped-query attention, a short window
    "tiny": dict(corpus_bytes=1_000_000, vocab=512, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                 head_dim=16, d_ff=128, window=64, batch=16, steps=80, lr=3e-3, threads=1),
    "smoke": dict(corpus_bytes=2_000_000, vocab=512, d_model=64, n_layers=1, n_heads=2, n_kv_heads=1,
                  head_dim=32, d_ff=256, window=128, batch=16, steps=60, lr=3e-3, threads=2),
    # f9efec63 (35c12cd8 was 24 MB, 2600 steps); 2e7c35de is this run resumed from its step-4600
    # checkpoint with --steps 7600; the built-in default, 70bfa4ff, is 2e7c35de trained on with
    # --init (the module docstring's command; train/RESULTS.md)
    "cpu": dict(corpus_bytes=64_000_000, vocab=4096, d_model=128, n_layers=2, n_heads=4, n_kv_heads=1,
                head_dim=32, d_ff=512, window=512, batch=16, steps=4800, lr=3e-3, threads=2),
    # a wider CPU candidate (2.35 M parameters; it led train/tradeoff.py's sweep) on twice the text;
    # about 1.8 times the work a token, and it needs more than one session's training
    # (train/RESULTS.md)
    "cpu-d192": dict(corpus_bytes=128_000_000, vocab=4096, d_model=192, n_layers=2, n_heads=4, n_kv_heads=1,
                     head_dim=48, d_ff=768, window=512, batch=16, steps=12000, lr=3e-3, threads=2),
    "gpu": dict(corpus_bytes=150_000_000, vocab=8192, d_model=256, n_layers=4, n_heads=4, n_kv_heads=1,
                head_dim=64, d_ff=1024, window=512, batch=128, steps=12000, lr=3e-3, threads=16),
}
QAT_FROM = 0.6  # share of steps trained in float before quantization-aware training starts


def bpb(model, val_ids, val_bytes, window, qat, device, max_windows=200):
    """Bits per byte on validation windows of `window` tokens, each starting cold."""
    model.eval()
    n = min(len(val_ids) // (window + 1), max_windows)
    tot, nbytes = 0.0, 0
    with torch.no_grad():
        for i in range(0, n, 16):
            xs = [val_ids[(j * (window + 1)):((j + 1) * (window + 1))] for j in range(i, min(n, i + 16))]
            x = torch.tensor(np.array(xs), dtype=torch.long, device=device)
            logits = model(x[:, :-1], qat=qat)
            tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum").item()
    model.train()
    frac = n * (window + 1) / max(1, len(val_ids))
    return tot / math.log(2) / (val_bytes * frac)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="cpu", choices=sorted(CONFIGS))
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, help="override the config's step count")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config entries (ints)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--checkpoint-every", type=int, default=200, metavar="N",
                    help="save OUT/checkpoint.pt every N steps (0: never)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--init", metavar="MODEL", help="start from an exported model file (its weights and "
                    "tokenizer; quantization-aware from the first step) instead of random weights")
    ap.add_argument("--data-seed", type=int, default=0, metavar="N",
                    help="which sample of the corpus to train on (the validation text is always seed 0's)")
    args = ap.parse_args()
    cfg = dict(CONFIGS[args.config])
    if args.steps:
        cfg["steps"] = args.steps
    for kv in args.set:
        k, v = kv.split("=")
        if k not in cfg:
            raise SystemExit(f"unknown config key {k}")
        cfg[k] = type(cfg[k])(v)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    ckpt = None
    if args.resume:
        if not os.path.exists(ckpt_path):
            raise SystemExit(f"--resume: no checkpoint at {ckpt_path}; run without --resume to start")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        saved = dict(ckpt["cfg"], steps=cfg["steps"])
        if ckpt["config"] != args.config or saved != cfg:
            raise SystemExit(f"--resume: {ckpt_path} was made with config {ckpt['config']} "
                             f"{json.dumps(ckpt['cfg'])}, not {args.config} {json.dumps(cfg)}")
        if cfg["steps"] < ckpt["step"]:
            raise SystemExit(f"--resume: the checkpoint is at step {ckpt['step']}, past --steps {cfg['steps']}")
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(cfg["threads"])
    log = open(os.path.join(args.out, "train.log"), "a" if ckpt else "w")

    def say(*a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        log.write(s + "\n")
        log.flush()

    t0 = time.time()
    train_docs, val_docs = data.sample_corpus(args.corpus, cfg["corpus_bytes"])
    if args.data_seed:
        train_docs, _ = data.sample_corpus(args.corpus, cfg["corpus_bytes"], seed=args.data_seed)
    say(f"corpus: {len(train_docs)} train docs {sum(map(len, train_docs))} B, {len(val_docs)} val docs "
        f"{sum(map(len, val_docs))} B ({time.time() - t0:.0f}s)")
    model = NNZModel(cfg)
    if ckpt:
        tok = Tokenizer.from_str(ckpt["tokenizer"])
    elif args.init:
        tok = Tokenizer.from_str(export.import_model(args.init, model))
        say(f"weights and tokenizer from {args.init}")
    else:
        tok = data.train_tokenizer(train_docs, cfg["vocab"] - 1)  # the last id is BOS
    assert tok.get_vocab_size() == cfg["vocab"] - 1, tok.get_vocab_size()
    tok_json = tok.to_str()
    bos = cfg["vocab"] - 1

    def stream(docs):
        out = []
        for enc in tok.encode_batch([C.bytes_to_mapped(d) for d in docs], add_special_tokens=False):
            out.append(bos)
            out.extend(enc.ids)
        return np.array(out, dtype=np.int64)

    train_ids, val_ids = stream(train_docs), stream(val_docs)
    val_bytes = sum(map(len, val_docs))
    say(f"tokens: train {len(train_ids)} ({sum(map(len, train_docs)) / len(train_ids):.2f} B/token), "
        f"val {len(val_ids)} ({time.time() - t0:.0f}s)")

    device = torch.device(args.device)
    model = model.to(device)
    nparam = sum(p.numel() for p in model.parameters())
    say(f"model: {nparam} parameters, config {json.dumps(cfg)}")
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "bias" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "bias" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=cfg["lr"], betas=(0.9, 0.95))
    W, B, steps = cfg["window"], cfg["batch"], cfg["steps"]
    warm = max(10, steps // 50)
    qat_from = int(steps * QAT_FROM)
    gen = np.random.default_rng(0)
    float_bpb = None
    qat_started = bool(args.init)  # an exported model is already quantized: no float phase
    first = 0
    if ckpt:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        gen.bit_generator.state = ckpt["sampler"]
        random.setstate(ckpt["random"])
        np.random.set_state(ckpt["np_random"])
        torch.set_rng_state(ckpt["torch_random"])
        first, float_bpb, qat_started = ckpt["step"], ckpt["float_bpb"], ckpt["qat_started"]
        say(f"resumed from {ckpt_path} at step {first} of {steps}")
    for step in range(first, steps):
        qat = qat_started or step >= qat_from
        if qat and not qat_started:
            qat_started = True
            float_bpb = bpb(model, val_ids, val_bytes, W, False, device)
            say(f"step {step}: float model val {float_bpb:.4f} bpb; quantization-aware training from here")
            # start the learned activation scales at the observed range of q, k, v
            calibrate(model, train_ids, W, device)
        lr = cfg["lr"] * min(1.0, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = gen.integers(0, len(train_ids) - W - 1, size=B)
        x = torch.tensor(np.stack([train_ids[s:s + W + 1] for s in starts]), device=device)
        logits = model(x[:, :-1], qat=qat)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            say(f"step {step} loss {loss.item():.4f} lr {lr:.2e} ({time.time() - t0:.0f}s)")
        if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0 and step + 1 < steps:
            save_checkpoint(ckpt_path, dict(
                config=args.config, cfg=cfg, step=step + 1, model=model.state_dict(), opt=opt.state_dict(),
                sampler=gen.bit_generator.state, random=random.getstate(), np_random=np.random.get_state(),
                torch_random=torch.get_rng_state(), float_bpb=float_bpb, qat_started=qat_started,
                tokenizer=tok_json))
    if float_bpb is None:
        float_bpb = bpb(model, val_ids, val_bytes, W, False, device)
    qat_bpb = bpb(model, val_ids, val_bytes, W, True, device)
    path = os.path.join(args.out, "model.safetensors")
    model = model.cpu()
    torch.save(model.state_dict(), os.path.join(args.out, "float_state.pt"))  # the float twin
    export.export(model, tok_json, path, {"nnz.trained": f"config={args.config} steps={steps}"})
    # the true integer model on a slice of the validation text (cold start per 2048-token chunk)
    icfg, tens, _ = intref.load(path)
    bits, nbytes = 0.0, 0
    table = data.id_to_bytes(tok)
    for d in val_docs[:40]:
        ids = data.encode(tok, d)[:2048]
        if not ids:
            continue
        bits += intref.cost_bits(intref.freq_tables(icfg, tens, ids), ids)
        nbytes += sum(len(table[i]) for i in ids)
    int_bpb = bits / nbytes
    report = dict(config=args.config, params=nparam, steps=steps, float_val_bpb=float_bpb,
                  qat_val_bpb=qat_bpb, int_val_bpb_2048=int_bpb, seconds=time.time() - t0,
                  model_bytes=os.path.getsize(path))
    if ckpt:
        report["resumed_at_step"] = first
    if args.init:
        report["init"], report["data_seed"] = os.path.basename(args.init), args.data_seed
    say("report " + json.dumps(report))
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)


def save_checkpoint(path, state):
    """Write the checkpoint whole or not at all: a run killed while saving keeps the previous one."""
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def calibrate(model, ids, W, device):
    with torch.no_grad():
        x = torch.tensor(np.stack([ids[i * W:(i + 1) * W] for i in range(8)]), device=device)
        h = model.emb[x]
        for b in model.blocks:
            a = h / torch.sqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
            for lin, aq in ((b.wq, b.qq), (b.wk, b.qk), (b.wv, b.qv)):
                r = torch.quantile(lin(a, False).abs().flatten().float()[:200000], 0.999).item()
                aq.log_s.fill_(math.log(max(r, 1e-3) / 127))
            h = b(h, False)


if __name__ == "__main__":
    main()
