"""Sample training text from ../shared/corpus and train the byte-level BPE tokenizer.

Documents are split into train / validation by a hash of their path (1 in 50 goes to validation),
so the split is stable whatever the sample size.
"""
import hashlib
import json
import lzma
import os
import random

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

import common

# share of the sample per corpus kind
KIND_WEIGHTS = {"prose": 0.40, "code": 0.25, "markup": 0.20, "logs": 0.08, "data": 0.07}


def is_validation(path: str) -> bool:
    return hashlib.sha256(path.encode()).digest()[0] % 50 == 0


def sample_corpus(corpus_dir, total_bytes, seed=0, max_doc=200_000):
    """Return (train_docs, val_docs) as lists of bytes, about total_bytes of training text."""
    rng = random.Random(seed)
    shards = sorted(os.listdir(os.path.join(corpus_dir, "train")))
    by_kind = {}
    for s in shards:
        by_kind.setdefault(s.split("-")[0], []).append(s)
    train, val = [], []
    for kind, files in sorted(by_kind.items()):
        budget = int(total_bytes * KIND_WEIGHTS.get(kind, 0.05))
        per_file = budget // len(files) + 1
        for f in files:
            docs = []
            with lzma.open(os.path.join(corpus_dir, "train", f), "rt", encoding="utf-8") as fh:
                for line in fh:
                    d = json.loads(line)
                    docs.append((d["path"], d["text"].encode("utf-8")))
            rng.shuffle(docs)
            got = 0
            for path, text in docs:
                if len(text) > max_doc:  # take a random slice of very long documents
                    start = rng.randrange(0, len(text) - max_doc)
                    text = text[start:start + max_doc]
                if is_validation(path):
                    if sum(map(len, val)) < total_bytes // 50:
                        val.append(text)
                    continue
                if got >= per_file:
                    continue
                train.append(text)
                got += len(text)
    rng.shuffle(train)
    return train, val


def train_tokenizer(docs, vocab_size):
    """Byte-level BPE over GPT-2-mapped chars; all 256 byte chars are in the alphabet."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(common.PRETOKENIZE_REGEX), behavior="isolated")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=common.BYTE_TO_CHAR,
        special_tokens=[],
        show_progress=False,
        limit_alphabet=256,
    )
    tok.train_from_iterator((common.bytes_to_mapped(d) for d in docs), trainer=trainer)
    return tok


def encode(tok, data: bytes):
    return tok.encode(common.bytes_to_mapped(data), add_special_tokens=False).ids


def id_to_bytes(tok):
    vocab = tok.get_vocab()
    table = [b""] * len(vocab)
    for s, i in vocab.items():
        table[i] = common.mapped_to_bytes(s)
    return table
