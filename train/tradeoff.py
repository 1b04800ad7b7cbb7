"""Size / quality / speed trade-off: train a few variants with the same budget and tabulate.

    python3 train/tradeoff.py --steps 300 --out train/out/tradeoff

Each variant is `train.py --config cpu` with overrides; the table reports parameters, model file
size, held-out bits per byte (float, fake-quant, true integer) and training time. Short CPU runs
rank the variants only roughly; the GPU run is where the real choice is made.
"""
import argparse
import json
import os
import subprocess
import sys

VARIANTS = {
    "base (V4096 d128 L2 H4 kv1 W512)": [],
    "vocab 2048": ["vocab=2048"],
    "d 192": ["d_model=192", "head_dim=48", "d_ff=768"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    for name, sets in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        out = os.path.join(args.out, name.split(" (")[0].replace(" ", "_"))
        cmd = [sys.executable, os.path.join(here, "train.py"), "--config", "cpu", "--out", out,
               "--steps", str(args.steps), "--set", "corpus_bytes=6000000", *sets]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "report.json")) as f:
            r = json.load(f)
        rows.append((name, r))
        print(name, json.dumps(r), flush=True)
    lines = ["| variant | params | model bytes | float bpb | fake-quant bpb | integer bpb | train s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['params']} | {r['model_bytes']} | {r['float_val_bpb']:.3f} | "
                     f"{r['qat_val_bpb']:.3f} | {r['int_val_bpb_2048']:.3f} | {r['seconds']:.0f} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "tradeoff.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
