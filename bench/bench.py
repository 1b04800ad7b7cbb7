"""The benchmark harness behind bench/run.sh. Numbers in the README come from here."""
import argparse
import csv
import json
import math
import mmap
import os
import subprocess
import tempfile
import time

NNZ_D = ["{nnz}", "-d", "-c", "-q"]
COMPRESSORS = {
    # name: (compress argv, decompress argv). Filters read stdin and write stdout; a command with
    # {in} and {out} works on files instead ({tmp}: a scratch folder of its own).
    **{f"nnz -{n}": (["{nnz}", f"-{n}", "-c", "-q"], NNZ_D) for n in range(1, 10)},
    "nnz --direct": (["{nnz}", "-c", "-q", "--direct"], NNZ_D),
    # -8 without the network: its deep CM and LZMA trials alone (the network share's baseline)
    "nnz -8 --without model": (["{nnz}", "-8", "--without", "model", "-c", "-q"], NNZ_D),
    "xz -9e": (["xz", "-9e", "-T1", "-c"], ["xz", "-d", "-c"]),
    "zstd -19": (["zstd", "-19", "-q", "-c"], ["zstd", "-d", "-q", "-c"]),
    "brotli -q 11": (["brotli", "-q", "11", "-c"], ["brotli", "-d", "-c"]),
    "bzip3 -b 511": (["bzip3", "-e", "-b", "511", "-c"], ["bzip3", "-d", "-c"]),
    "7zz PPMd": (["sh", "-c", "rm -f {out}.7z && 7zz a -bd -bso0 -mx=9 -m0=PPMd:mem=256m:o=16 -mmt=1 {out}.7z {in} "
                  "&& mv {out}.7z {out}"],
                 ["sh", "-c", "7zz e -bd -so -t7z {in} > {out}"]),
    # zpaq keeps the path given; archive the file as "f" from its folder
    "zpaq -m5": (["sh", "-c", "rm -rf {tmp} && mkdir -p {tmp} && cp {in} {tmp}/f && cd {tmp} && "
                  "zpaq a {out}.zpaq f -m5 >/dev/null 2>&1 && mv {out}.zpaq {out}"],
                 ["sh", "-c", "rm -rf {tmp} && mkdir -p {tmp} && cd {tmp} && ln -s {in} a.zpaq && "
                  "zpaq x a.zpaq >/dev/null 2>&1 && mv f {out}"]),
}
# what each archive holds besides the data (zpaq: ~1 KB of container per archive); measured on a
# 1-byte file at the start and reported apart ("size less container")
CONTAINER = ["zpaq -m5"]
# the same trials without and with the transformer (docs/FORMAT.md, "Encoder choices")
NO_NET, WITH_NET = "nnz -8 --without model", "nnz -8"


def timed(argv, src, dst, tmp):
    """Run argv (a filter from src to dst, or a command on {in} and {out}) under GNU time; return
    (wall seconds, peak RSS KiB)."""
    files = any("{in}" in a for a in argv)
    argv = [a.format(**{"in": src, "out": dst, "tmp": tmp}) for a in argv]
    with open(src, "rb") as i, open(dst if not files else os.devnull, "wb") as o, \
            tempfile.NamedTemporaryFile("r") as t:
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name] + argv,
                       stdin=subprocess.DEVNULL if files else i, stdout=o, check=True)
        secs = time.perf_counter() - t0
        rss = t.read().split()[-1]
    return max(secs, 1e-4), int(rss)


def warm_memory(margin=1536 << 20):
    """Write to every page of the memory that is free now, all at once, then give it back.

    On a virtual machine whose host backs guest memory lazily (a fresh Firecracker VM, as the CI and
    bench machines are), the first write to each guest page costs the host a fault: measured here,
    about 3 ms per MiB, so a compressor that happens to get never-touched pages for a 128 MiB table
    pays 0.4 s more than one that gets reused pages, with the same code and data. Which one a run
    gets is chance, and it swamped the differences the speed targets ask about (nnz -4 and -5,
    equal work, measured 25% apart in one run). Touching all free memory once first makes every
    later allocation land on pages the host already backs, as on a real machine, for every
    compressor alike. Costs about 3 s per GiB once on a fresh machine, little after."""
    try:
        with open("/proc/meminfo") as fh:
            info = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in fh if l.split()[1].isdigit()}
    except OSError:
        return
    size = info.get("MemAvailable", 0) - margin
    if size <= 0:
        return
    t0 = time.perf_counter()
    maps, piece = [], 256 << 20
    for _ in range(size // piece):
        m = mmap.mmap(-1, piece)
        if hasattr(m, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
            # the tables the compressors allocate ask for huge pages too: warm those blocks
            m.madvise(mmap.MADV_HUGEPAGE)
        for off in range(0, piece, 4096):
            m[off] = 1
        maps.append(m)
    for m in maps:
        m.close()
    print(f"warmed {len(maps) * piece >> 20} MiB of free memory in {time.perf_counter() - t0:.1f} s", flush=True)


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
    """bits per byte (y) against compression speed (x, log scale), one point per compressor and
    level; nnz in red, the others in blue."""
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
    for r in rows:
        x, y = px(r["c_mbps"]), py(r["bpb"])
        c = "#d62728" if r["name"].startswith("nnz") else "#1f77b4"
        s.append(f'<circle cx="{x}" cy="{y}" r="5" fill="{c}"/>')
        s.append(f'<text x="{x+7}" y="{y-6}" font-size="10">{r["name"]} ({r["bpb"]:.3f})</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nnz", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", help="compressor names to run")
    ap.add_argument("--no-warm", action="store_true", help="do not touch free memory first (warm_memory)")
    ap.add_argument("--merge", metavar="RESULTS_JSON",
                    help="with --only: take the other compressors' rows from this earlier run's results.json "
                         "(the tables then say which ran when)")
    args = ap.parse_args()
    if not args.no_warm:
        warm_memory()
    os.makedirs(args.out, exist_ok=True)
    files = files_of(args.dir)
    names = [n for n in COMPRESSORS if not args.only or n in args.only]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        def argvs(name):
            return ([a.replace("{nnz}", args.nnz) for a in v] for v in COMPRESSORS[name])
        scratch = os.path.join(tmp, "scratch")
        packed, back = os.path.join(tmp, "packed"), os.path.join(tmp, "back")
        overhead = {}
        one = os.path.join(tmp, "one")
        with open(one, "wb") as fh:
            fh.write(b"x")
        for name in names:
            if name in CONTAINER:
                timed(next(argvs(name)), one, packed, scratch)
                overhead[name] = os.path.getsize(packed) - 1
        for f in files:
            size = os.path.getsize(f)
            for name in names:
                c_argv, d_argv = argvs(name)
                ct, crss = timed(c_argv, f, packed, scratch)
                dt, drss = timed(d_argv, packed, back, scratch)
                with open(f, "rb") as a, open(back, "rb") as b:
                    if a.read() != b.read():
                        raise SystemExit(f"ROUND TRIP FAILED: {name} on {f}")
                psize = os.path.getsize(packed) - overhead.get(name, 0)
                results.append(dict(file=os.path.relpath(f, args.dir), compressor=name, size=size, packed=psize,
                                    bpb=8 * psize / size, c_s=ct, d_s=dt, c_rss_kib=crss, d_rss_kib=drss))
                print(f"{results[-1]['file']:32} {name:14} {psize:>9} {8 * psize / size:6.3f} bpb "
                      f"c {size / ct / 1e6:8.3f} MB/s d {size / dt / 1e6:8.3f} MB/s", flush=True)
    ran = list(names)
    merged = []
    if args.merge:
        with open(args.merge) as fh:
            prev = json.load(fh)
        rels = {os.path.relpath(f, args.dir) for f in files}
        kept = [r for r in prev["files"] if r["compressor"] not in ran and r["file"] in rels]
        merged = [n for n in COMPRESSORS if any(r["compressor"] == n for r in kept)]
        results += kept
        for n, b in prev.get("container", {}).items():
            overhead.setdefault(n, b)
        names = [n for n in COMPRESSORS if n in ran or n in merged]
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
        json.dump({"files": results, "totals": totals, "container": overhead}, fh, indent=1)
    notes = [f"{n}: sizes less {b} bytes of container per archive (its archive of a 1-byte file, less 1)"
             for n, b in overhead.items() if n in names]
    if merged:
        notes.append(f"two runs merged: {', '.join(ran)} ran now; {', '.join(merged)} are from {args.merge} "
                     "(speeds compare within one run only)")
    # the network's share: `-8 --without model` is level 8 without the transformer (the same deep
    # byte mixer and LZMA trials, no blend frames), so its size / size(-8) - 1 is what the network
    # takes off
    share = NO_NET in names and WITH_NET in names
    md = ["| file | bytes | " + " | ".join(f"{n} bpb" for n in names) + (" | network share |" if share else " |"),
          "|---|---:|" + "---:|" * (len(names) + share)]
    def share_of(rs):
        no, yes = sum(r["packed"] for r in rs[NO_NET]), sum(r["packed"] for r in rs[WITH_NET])
        return f" | {100 * (no / yes - 1):.1f}%"
    for f in files:
        rel = os.path.relpath(f, args.dir)
        rs = {r["compressor"]: r for r in results if r["file"] == rel}
        md.append(f"| {rel} | {os.path.getsize(f)} | " + " | ".join(f"{rs[n]['bpb']:.3f}" for n in names)
                  + (share_of({n: [rs[n]] for n in rs}) if share else "") + " |")
    md.append(f"| **all** | {totals[0]['size']} | " + " | ".join(f"**{t['bpb']:.3f}**" for t in totals)
              + (share_of({n: [r for r in results if r["compressor"] == n] for n in names}) if share else "")
              + " |")
    md += ["", "| compressor | total bytes | bits per byte | compress MB/s | decompress MB/s | peak RSS MiB |",
           "|---|---:|---:|---:|---:|---:|"]
    for t in totals:
        md.append(f"| {t['name']} | {t['packed']} | {t['bpb']:.3f} | {t['c_mbps']:.3f} | {t['d_mbps']:.3f} | {t['rss_mib']:.0f} |")
    md += [""] + [f"- {n}" for n in notes]
    text = "\n".join(md) + "\n"
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(text)
    svg_chart(totals, os.path.join(args.out, "chart.svg"))
    print()
    print(text)


if __name__ == "__main__":
    main()
