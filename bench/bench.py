"""The benchmark harness behind bench/run.sh. Numbers in the README come from here."""
import argparse
import csv
import json
import math
import os
import subprocess
import tempfile

COMPRESSORS = {
    # name: (compress argv, decompress argv); both filter stdin -> stdout
    "nnz": (["{nnz}", "-c", "-q"], ["{nnz}", "-d", "-c", "-q"]),
    "nnz --direct": (["{nnz}", "-c", "-q", "--direct"], ["{nnz}", "-d", "-c", "-q"]),
    "xz -9e": (["xz", "-9e", "-T1", "-c"], ["xz", "-d", "-c"]),
    "zstd -19": (["zstd", "-19", "-q", "-c"], ["zstd", "-d", "-q", "-c"]),
    "brotli -q 11": (["brotli", "-q", "11", "-c"], ["brotli", "-d", "-c"]),
}


def timed(argv, src, dst):
    """Run argv with stdin=src, stdout=dst under GNU time; return (seconds, peak RSS KiB)."""
    with open(src, "rb") as i, open(dst, "wb") as o, tempfile.NamedTemporaryFile("r") as t:
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name] + argv, stdin=i, stdout=o, check=True)
        secs, rss = t.read().split()[-2:]
    return max(float(secs), 0.01), int(rss)


def files_of(d):
    out = []
    for root, _, names in os.walk(d):
        for n in sorted(names):
            p = os.path.join(root, n)
            if n.lower().startswith("readme") or os.path.getsize(p) == 0:
                continue
            out.append(p)
    return sorted(out)


def svg_chart(rows, path):
    """bits per byte (y) against compression speed (x, log scale), one point per compressor."""
    W, H, L, B = 640, 400, 70, 50
    xs = [r["c_mbps"] for r in rows]
    lo, hi = math.floor(math.log10(min(xs))) , math.ceil(math.log10(max(xs)))
    if hi == lo:
        hi += 1
    ymax = max(r["bpb"] for r in rows) * 1.15
    def px(v):
        return L + (math.log10(v) - lo) / (hi - lo) * (W - L - 20)
    def py(v):
        return H - B - v / ymax * (H - B - 20)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<line x1="{L}" y1="{H-B}" x2="{W-20}" y2="{H-B}" stroke="black"/>',
         f'<line x1="{L}" y1="20" x2="{L}" y2="{H-B}" stroke="black"/>']
    for e in range(lo, hi + 1):
        x = px(10 ** e)
        s.append(f'<line x1="{x}" y1="{H-B}" x2="{x}" y2="{H-B+5}" stroke="black"/>')
        s.append(f'<text x="{x}" y="{H-B+20}" text-anchor="middle">{10**e:g}</text>')
    for i in range(6):
        v = ymax * i / 5
        s.append(f'<text x="{L-8}" y="{py(v)+4}" text-anchor="end">{v:.2f}</text>')
    s.append(f'<text x="{(W+L)/2}" y="{H-10}" text-anchor="middle">compression speed, MB/s (log scale)</text>')
    s.append(f'<text x="15" y="{H/2}" transform="rotate(-90 15 {H/2})" text-anchor="middle">bits per byte (lower is better)</text>')
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
    for r, c in zip(rows, colors):
        x, y = px(r["c_mbps"]), py(r["bpb"])
        s.append(f'<circle cx="{x}" cy="{y}" r="6" fill="{c}"/>')
        s.append(f'<text x="{x+9}" y="{y-8}">{r["name"]} ({r["bpb"]:.3f})</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnz", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", help="compressor names to run")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    files = files_of(args.dir)
    names = [n for n in COMPRESSORS if not args.only or n in args.only]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            size = os.path.getsize(f)
            for name in names:
                c_argv, d_argv = ([a.format(nnz=args.nnz) for a in v] for v in COMPRESSORS[name])
                packed, back = os.path.join(tmp, "packed"), os.path.join(tmp, "back")
                ct, crss = timed(c_argv, f, packed)
                dt, drss = timed(d_argv, packed, back)
                with open(f, "rb") as a, open(back, "rb") as b:
                    if a.read() != b.read():
                        raise SystemExit(f"ROUND TRIP FAILED: {name} on {f}")
                psize = os.path.getsize(packed)
                results.append(dict(file=os.path.relpath(f, args.dir), compressor=name, size=size, packed=psize,
                                    bpb=8 * psize / size, c_s=ct, d_s=dt, c_rss_kib=crss, d_rss_kib=drss))
                print(f"{results[-1]['file']:32} {name:14} {psize:>9} {8 * psize / size:6.3f} bpb "
                      f"c {size / ct / 1e6:8.3f} MB/s d {size / dt / 1e6:8.3f} MB/s", flush=True)
    totals = []
    for name in names:
        rs = [r for r in results if r["compressor"] == name]
        size, packed = sum(r["size"] for r in rs), sum(r["packed"] for r in rs)
        ct, dt = sum(r["c_s"] for r in rs), sum(r["d_s"] for r in rs)
        totals.append(dict(name=name, size=size, packed=packed, bpb=8 * packed / size, c_mbps=size / ct / 1e6,
                           d_mbps=size / dt / 1e6, rss_mib=max(max(r["c_rss_kib"], r["d_rss_kib"]) for r in rs) / 1024))
    with open(os.path.join(args.out, "results.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(results[0].keys()))
        w.writeheader()
        w.writerows(results)
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump({"files": results, "totals": totals}, fh, indent=1)
    md = ["| file | bytes | " + " | ".join(f"{n} bpb" for n in names) + " |",
          "|---|---:|" + "---:|" * len(names)]
    for f in files:
        rel = os.path.relpath(f, args.dir)
        rs = {r["compressor"]: r for r in results if r["file"] == rel}
        md.append(f"| {rel} | {os.path.getsize(f)} | " + " | ".join(f"{rs[n]['bpb']:.3f}" for n in names) + " |")
    md.append(f"| **all** | {totals[0]['size']} | " + " | ".join(f"**{t['bpb']:.3f}**" for t in totals) + " |")
    md += ["", "| compressor | total bytes | bits per byte | compress MB/s | decompress MB/s | peak RSS MiB |",
           "|---|---:|---:|---:|---:|---:|"]
    for t in totals:
        md.append(f"| {t['name']} | {t['packed']} | {t['bpb']:.3f} | {t['c_mbps']:.3f} | {t['d_mbps']:.3f} | {t['rss_mib']:.0f} |")
    text = "\n".join(md) + "\n"
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(text)
    svg_chart(totals, os.path.join(args.out, "chart.svg"))
    print()
    print(text)


if __name__ == "__main__":
    main()
