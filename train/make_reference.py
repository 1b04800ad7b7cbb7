"""Write reference vectors for tests/reference.rs: token sequences and the frequency tables that
the integer reference (intref.py) computes for them.

    python3 train/make_reference.py MODEL.safetensors OUT.ref [TOKENS_PER_SEQUENCE]

File layout (little-endian): magic b"NNZREF01", u32 vocab, u32 n_seqs, then per sequence:
u32 n, n x u32 tokens, V x u32 full table of position 0, n x 8 bytes: sha256(table as LE u32)[:8].
"""
import hashlib
import struct
import sys

import numpy as np

import common as C
import intref
from tokenizers import Tokenizer

TEXTS = [
    b"Alice was beginning to get very tired of sitting by her sister on the bank, and of having "
    b"nothing to do: once or twice she had peeped into the book her sister was reading.\n" * 3,
    b"int main(int argc, char **argv) {\n\tfor (int i = 0; i < argc; i++) printf(\"%s\\n\", argv[i]);\n}\n" * 4,
    bytes(range(256)) + b"\x00\xff\xfe invalid utf-8 \xc3\x28 and more",
]


def main():
    model_path, out_path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300  # tokens per sequence; exceed the window
    cfg, t, meta = intref.load(model_path)
    tok = Tokenizer.from_str(meta["nnz.tokenizer"])
    seqs = [tok.encode(C.bytes_to_mapped(x * 8), add_special_tokens=False).ids[:n] for x in TEXTS]
    rng = np.random.default_rng(1)
    seqs.append([int(v) for v in rng.integers(0, cfg["vocab"] - 1, size=200)])  # random ids, no BOS
    with open(out_path, "wb") as f:
        f.write(b"NNZREF01")
        f.write(struct.pack("<II", cfg["vocab"], len(seqs)))
        for s in seqs:
            tables = intref.freq_tables(cfg, t, s).astype("<u4")
            assert tables.min() >= 1 and tables.sum(axis=1).max() <= C.FREQ_BUDGET
            f.write(struct.pack("<I", len(s)))
            f.write(np.array(s, dtype="<u4").tobytes())
            f.write(tables[0].tobytes())
            for row in tables:
                f.write(hashlib.sha256(row.tobytes()).digest()[:8])
            print(f"sequence of {len(s)} tokens: {intref.cost_bits(tables, s) / 8:.0f} bytes ideal")


if __name__ == "__main__":
    main()
