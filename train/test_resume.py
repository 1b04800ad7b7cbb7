"""Check that an interrupted training run, resumed from its checkpoint, ends with the same model as
an uninterrupted one: once from a checkpoint before quantization-aware training starts and once
from one after (the `tiny` config, 30 steps: QAT from step 18). Under two minutes on 2 cores.

    python3 train/test_resume.py [--corpus DIR]
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))


def train(out, corpus, *extra):
    cmd = [sys.executable, os.path.join(HERE, "train.py"), "--config", "tiny", "--steps", "30",
           "--corpus", corpus, "--out", out, *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__")


def same_model(a, b):
    """Same tensors, bit for bit, and the same metadata (the header's key order may differ)."""
    ta, tb = load_file(a), load_file(b)
    return (ta.keys() == tb.keys()
            and all(ta[k].shape == tb[k].shape and (ta[k] == tb[k]).all() for k in ta)
            and metadata(a) == metadata(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.path.join(HERE, "..", "..", "shared", "corpus"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        whole = os.path.join(tmp, "whole")
        train(whole, args.corpus, "--checkpoint-every", "0")
        for at in (16, 20):
            # a run that saves a checkpoint at step `at` (and none later), stopped there
            first = os.path.join(tmp, f"first{at}")
            train(first, args.corpus, "--checkpoint-every", str(at))
            resumed = os.path.join(tmp, f"resumed{at}")
            os.makedirs(resumed)
            shutil.copy(os.path.join(first, "checkpoint.pt"), resumed)
            train(resumed, args.corpus, "--resume")
            with open(os.path.join(resumed, "report.json")) as f:
                assert json.load(f)["resumed_at_step"] == at
            ok = same_model(os.path.join(whole, "model.safetensors"), os.path.join(resumed, "model.safetensors"))
            print(f"resumed at step {at}: {'same model' if ok else 'DIFFERENT model'}")
            if not ok:
                sys.exit(1)
        # a checkpoint of another config is refused with a message, not used
        r = subprocess.run([sys.executable, os.path.join(HERE, "train.py"), "--config", "smoke", "--corpus",
                            args.corpus, "--out", os.path.join(tmp, "resumed16"), "--resume"],
                           capture_output=True, text=True)
        assert r.returncode != 0 and "was made with config tiny" in r.stderr, r.stderr
    print("ok")


if __name__ == "__main__":
    main()
