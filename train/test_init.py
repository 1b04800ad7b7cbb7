"""Check that a model file imported for training (train.py --init) is the model that was exported:
exporting it again, untrained, gives the same int8 rows, tables and tokenizer, and multipliers
within one unit of 2^-24 (the float scales round), so the same integer model up to those roundings;
and its quantization-aware float forward pass gives nearly the integer model's bits.

    python3 train/test_init.py [MODEL]     # default: models/default.safetensors
"""
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import export  # noqa: E402
import intref  # noqa: E402
from model import NNZModel  # noqa: E402

TEXT = (b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
        b"age of foolishness, it was the epoch of belief, it was the epoch of incredulity. ") * 3


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "models",
                                                             "default.safetensors")
    cfg, t, meta = intref.load(src)
    model = NNZModel(dict(cfg))
    tok_json = export.import_model(src, model)
    assert tok_json == meta["nnz.tokenizer"]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "again.safetensors")
        export.export(model, tok_json, out)
        _, t2, meta2 = intref.load(out)
    assert sorted(t) == sorted(t2), "different tensors"
    worst = 0
    for k in t:
        a, b = t[k].astype(np.int64), t2[k].astype(np.int64)
        if k.endswith(".m"):
            worst = max(worst, int(np.abs(a - b).max()))
            assert np.abs(a - b).max() <= 1, f"{k}: multipliers differ by {np.abs(a - b).max()}"
        else:
            assert np.array_equal(a, b), f"{k}: {np.count_nonzero(a != b)} entries differ"
    assert meta2["nnz.config"] == meta["nnz.config"] and meta2["nnz.tokenizer"] == meta["nnz.tokenizer"]
    # the float twin codes like the integer model
    tok = Tokenizer.from_str(tok_json)
    ids = [cfg["vocab"] - 1] + data.encode(tok, TEXT)
    ibits = intref.cost_bits(intref.freq_tables(cfg, t, ids[1:]), ids[1:])
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]]), qat=True)
        fbits = F.cross_entropy(logits[0], torch.tensor(ids[1:]), reduction="sum").item() / np.log(2)
    print(f"{src}: re-export same rows (multipliers within {worst}); "
          f"integer {ibits / len(TEXT):.4f} bits/byte, quantization-aware float {fbits / len(TEXT):.4f}")
    assert abs(fbits - ibits) < 0.03 * ibits, "the imported model does not code like the file"


if __name__ == "__main__":
    main()
