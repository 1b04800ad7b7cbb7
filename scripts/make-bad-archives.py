#!/usr/bin/env python3
"""Write testdata/bad/: damaged and hostile archives, each with the error a decoder must give.

Made from the golden archives (testdata/golden, tiny model, 4 KiB chunks), so the tests decode them
with testdata/tiny.safetensors. `expect.tsv` lists, per file, the error kind (the nnz::Error
variant) and a fragment of its message. Run from the repository root; the output is committed.
"""
import os
import struct

G = "testdata/golden"
OUT = "testdata/bad"


def read(name):
    with open(os.path.join(G, name), "rb") as f:
        return f.read()


def header(version, model_id, chunk):
    return b"\x89NNZ" + bytes([version, 0, 0, 0]) + model_id + struct.pack("<I", chunk)


def end(total, checksum=0):
    b = bytearray([0])
    v = total
    while v >= 0x80:
        b.append((v & 0x7F) | 0x80)
        v >>= 7
    b.append(v)
    return bytes(b) + struct.pack("<Q", checksum)


def frames(archive):
    """(offset, kind, head fields, payload offset, payload length) of each frame of one stream."""
    out, pos = [], 28
    while True:
        kind = archive[pos]
        if kind == 0:
            out.append((pos, 0, None, None, None))
            return out
        n = {1: 4, 5: 4, 6: 4, 7: 4, 8: 4, 2: 2, 3: 3, 4: 3, 9: 3, 10: 3}[kind]
        fields = struct.unpack_from("<%dI" % n, archive, pos + 1)
        plen = fields[0] if kind == 2 else fields[-2]
        start = pos + 1 + 4 * n
        out.append((pos, kind, fields, start, plen))
        pos = start + plen


model = read("sample.txt.nnz")
cm = read("server.log.nnz")
direct = read("sample.txt.direct.nnz")
bwt = read("levels/mixed.L2.nnz")
fast = read("levels/mixed.L1.nnz")
mid = model[8:24]
cases = {}


def case(name, data, kind, msg):
    cases[name] = (data, kind, msg)


def changed(b, i, v):
    b = bytearray(b)
    b[i] = v
    return bytes(b)


def with_u32(archive, at, value):
    """`archive` with the u32 at offset `at` replaced."""
    b = bytearray(archive)
    struct.pack_into("<I", b, at, value)
    return bytes(b)


mf = frames(model)[0]
case("empty.nnz", b"", "Truncated", "truncated")
case("not-an-archive.nnz", b"plain text, not an archive at all\n", "NotAnArchive", "not an nnz archive")
case("header-only.nnz", model[:28], "Truncated", "truncated")
case("truncated-half.nnz", model[: len(model) // 2], "Truncated", "truncated")
case("truncated-end-frame.nnz", model[:-3], "Truncated", "truncated")
case("future-version.nnz", changed(model, 4, 21), "FutureVersion", "newer than this nnz")
case("version-zero.nnz", changed(model, 4, 0), "Corrupt", "format version 0")
case("reserved-bits.nnz", changed(model, 6, 0x10), "Corrupt", "reserved header bytes")
case("chunk-size-zero.nnz", model[:24] + struct.pack("<I", 0) + model[28:], "Corrupt", "chunk size 0")
case("chunk-size-too-big.nnz", model[:24] + struct.pack("<I", (64 << 20) + 1) + model[28:], "Corrupt", "chunk size")
case("wrong-model.nnz", changed(model, 8, model[8] ^ 0xFF), "WrongModel", "made with model")
case("unknown-kind.nnz", changed(model, mf[0], 11), "Corrupt", "unknown frame kind 11")
case("direct-frame-in-v4-only.nnz", changed(direct, 4, 3), "Corrupt", "unknown frame kind 5")
case("blend-frame-in-v6-only.nnz", changed(model, 4, 5), "Corrupt", "unknown frame kind 6")
case("bwt-frame-in-v7-only.nnz", changed(bwt, 4, 6), "Corrupt", "unknown frame kind 7")

# a BWT or fast BWT frame's primary index (its second head field) outside 1..=raw_len, or (BWT)
# another value in it
case("fast-bwt-frame-in-v8-only.nnz", changed(fast, 4, 7), "Corrupt", "unknown frame kind 8")
# CM frames whose byte mixer found records (format 9), read as format 8, whose mixer looks for none
case("records-read-as-v8.nnz", changed(read("rings.pbm.raw.v9.nnz"), 4, 8), "Corrupt", "is corrupt")
# a deep CM frame (format 10) in a format-9 stream, and one read as a plain CM frame
deep = read("server.log.nnz")
df = [f for f in frames(deep) if f[1] == 9][0]
case("deep-cm-frame-in-v9-only.nnz", changed(deep, 4, 9), "Corrupt", "unknown frame kind 9")
case("deep-cm-read-as-cm.nnz", changed(deep, df[0], 4), "Corrupt", "")
# deep CM frames of format 11 (with the long match model) read as format 10's, and format 10's
# read as format 11's
case("deep-cm-v11-read-as-v10.nnz", changed(read("levels/mixed.L6.v11.nnz"), 4, 10), "Corrupt", "is corrupt")
case("deep-cm-v10-read-as-v11.nnz", changed(read("levels/mixed.L6.v10.nnz"), 4, 11), "Corrupt", "is corrupt")
# a bi-level image's deep CM frames of format 12 (with the image model) read as format 11's, and
# format 11's read as format 12's
case("deep-cm-v12-read-as-v11.nnz", changed(read("rings.pbm.raw.v12.nnz"), 4, 11), "Corrupt", "is corrupt")
case("deep-cm-v11-read-as-v12.nnz", changed(read("rings.pbm.raw.v11.nnz"), 4, 12), "Corrupt", "is corrupt")
# CM and deep CM frames of format 13 (its contexts and rates) read as format 12's, and format 12's
# read as format 13's
# (format 17's CM frames are format 13's)
case("cm-v13-read-as-v12.nnz", changed(read("levels/mixed.L4.v17.nnz"), 4, 12), "Corrupt", "is corrupt")
case("cm-v12-read-as-v13.nnz", changed(read("levels/mixed.L4.v12.nnz"), 4, 13), "Corrupt", "is corrupt")
case("deep-cm-v13-read-as-v12.nnz", changed(read("levels/mixed.L6.v13.nnz"), 4, 12), "Corrupt", "is corrupt")
case("deep-cm-v12-read-as-v13.nnz", changed(read("levels/mixed.L6.v12.nnz"), 4, 13), "Corrupt", "is corrupt")
# blend frames of format 13 (its contexts and rate) read as format 12's, and format 12's read as
# format 13's
case("blend-v13-read-as-v12.nnz", changed(read("sample.txt.v13.nnz"), 4, 12), "Corrupt", "is corrupt")
case("blend-v12-read-as-v13.nnz", changed(read("sample.txt.v12.nnz"), 4, 13), "Corrupt", "is corrupt")
# a mid CM frame (format 14) in a format-13 stream, and one read as a deep CM frame
trimmed = read("levels/mixed.L6.nnz")
tf = [f for f in frames(trimmed) if f[1] == 10][0]
case("mid-cm-frame-in-v13-only.nnz", changed(trimmed, 4, 13), "Corrupt", "unknown frame kind 10")
case("mid-cm-read-as-deep-cm.nnz", changed(trimmed, tf[0], 9), "Corrupt", "")
# deep CM frames of format 15 (with the run model) read as format 14's, and format 14's read as
# format 15's; blend frames of format 15 (bit histories, long match, the larger boundary
# predictor) read as format 14's, and format 14's read as format 15's
case("deep-cm-v15-read-as-v14.nnz", changed(read("rings.pbm.raw.v15.nnz"), 4, 14), "Corrupt", "is corrupt")
case("deep-cm-v14-read-as-v15.nnz", changed(read("rings.pbm.raw.v14.nnz"), 4, 15), "Corrupt", "is corrupt")
case("blend-v15-read-as-v14.nnz", changed(read("sample.txt.v15.nnz"), 4, 14), "Corrupt", "")
case("blend-v14-read-as-v15.nnz", changed(read("sample.txt.v14.nnz"), 4, 15), "Corrupt", "")
# a JPEG's deep CM frame of format 16 (with the JPEG model) read as format 15's
case("deep-cm-jpeg-v16-read-as-v15.nnz", changed(read("picture.jpg.v16.nnz"), 4, 15), "Corrupt", "is corrupt")
# deep and mid CM frames of format 17 (with the number model) read as format 16's, and format 16's
# read as format 17's
case("deep-cm-v17-read-as-v16.nnz", changed(read("server.log.v17.nnz"), 4, 16), "Corrupt", "is corrupt")
case("deep-cm-v16-read-as-v17.nnz", changed(read("server.log.v16.nnz"), 4, 17), "Corrupt", "is corrupt")
case("mid-cm-v17-read-as-v16.nnz", changed(read("levels/mixed.L6.v17.nnz"), 4, 16), "Corrupt", "is corrupt")
# CM, mid CM, deep CM and blend frames of format 18 (mixers and maps that warm up) read as format
# 17's, and format 17's read as format 18's
case("cm-v18-read-as-v17.nnz", changed(read("levels/mixed.L4.nnz"), 4, 17), "Corrupt", "is corrupt")
case("mid-cm-v18-read-as-v17.nnz", changed(read("levels/mixed.L6.nnz"), 4, 17), "Corrupt", "is corrupt")
case("deep-cm-v18-read-as-v17.nnz", changed(read("server.log.nnz"), 4, 17), "Corrupt", "is corrupt")
case("deep-cm-v17-read-as-v18.nnz", changed(read("server.log.v17.nnz"), 4, 18), "Corrupt", "is corrupt")
case("deep-cm-jpeg-v18-read-as-v17.nnz", changed(read("picture.jpg.nnz"), 4, 17), "Corrupt", "is corrupt")
case("blend-v18-read-as-v17.nnz", changed(read("sample.txt.v18.nnz"), 4, 17), "Corrupt", "")
case("blend-v17-read-as-v18.nnz", changed(read("sample.txt.v17.nnz"), 4, 18), "Corrupt", "")
# blend frames of format 19 (the adaptive output layer) read as format 18's, and format 18's read
# as format 19's (CM frames of both formats are the same)
case("blend-v19-read-as-v18.nnz", changed(read("sample.txt.v19.nnz"), 4, 18), "Corrupt", "")
case("blend-v18-read-as-v19.nnz", changed(read("sample.txt.v18.nnz"), 4, 19), "Corrupt", "")
# deep and mid CM frames of format 20 (the URL model) over URLs read as format 19's, and format 19's
# read as format 20's
case("deep-cm-v20-read-as-v19.nnz", changed(read("links.txt.nnz"), 4, 19), "Corrupt", "is corrupt")
case("deep-cm-v19-read-as-v20.nnz", changed(read("links.txt.v19.nnz"), 4, 20), "Corrupt", "is corrupt")
case("mid-cm-v20-read-as-v19.nnz", changed(read("links.txt.mid.nnz"), 4, 19), "Corrupt", "is corrupt")
case("mid-cm-v19-read-as-v20.nnz", changed(read("links.txt.mid.v19.nnz"), 4, 20), "Corrupt", "is corrupt")
bf = [f for f in frames(bwt) if f[1] == 7][0]
ff = [f for f in frames(fast) if f[1] == 8][0]
for prefix, archive, f in [("bwt", bwt, bf), ("fast-bwt", fast, ff)]:
    for name, p in [("zero", 0), ("past-end", f[2][0] + 1)]:
        case(f"{prefix}-primary-{name}.nnz", with_u32(archive, f[0] + 5, p), "Corrupt", "primary index")
case("bwt-primary-changed.nnz", with_u32(bwt, bf[0] + 5, bf[2][1] % bf[2][0] + 1), "Corrupt", "")
# a fast BWT frame's payload starts with the rows where the walks of its inverse start: one out of
# range, and one changed to another row (the walks then do not end where they must)
case("fast-bwt-row-past-end.nnz", with_u32(fast, ff[3], ff[2][0] + 1), "Corrupt", "start row")
row = struct.unpack_from("<I", fast, ff[3])[0]
case("fast-bwt-row-changed.nnz", with_u32(fast, ff[3], row % ff[2][0] + 1), "Corrupt", "")
# a payload too short for its rows
b = bytearray(fast[: ff[3]]) + fast[ff[3] : ff[3] + 2] + fast[ff[3] + ff[4] :]
struct.pack_into("<I", b, ff[0] + 9, 2)
case("fast-bwt-rows-cut.nnz", bytes(b), "Corrupt", "")
case("frame-checksum.nnz", changed(model, mf[3] - 1, model[mf[3] - 1] ^ 0x01), "Corrupt", "frame checksum")
case("content-checksum.nnz", changed(model, len(model) - 1, model[-1] ^ 0x80), "Corrupt", "content checksum")
case("total-length.nnz", model[: frames(model)[-1][0]] + end(len(read("sample.txt")) + 1), "Corrupt", "content checksum")
# the model frame's raw_len above the header's chunk size
big = bytearray(model)
struct.pack_into("<I", big, 24, 1000)
case("oversized-frame.nnz", bytes(big), "Corrupt", "frame length")
# payload damage: the last byte changed, a zero byte added, a byte cut
last = mf[3] + mf[4] - 1
case("flush-byte-changed.nnz", changed(model, last, model[last] ^ 0x01), "Corrupt", "")
grown = bytearray(model[: mf[3]]) + model[mf[3] : mf[3] + mf[4]] + b"\x00" + model[mf[3] + mf[4] :]
struct.pack_into("<I", grown, mf[0] + 9, mf[4] + 1)
case("payload-trailing-zero.nnz", bytes(grown), "Corrupt", "trailing zero byte")
junk = bytearray(model[: mf[3]]) + model[mf[3] : mf[3] + mf[4]] + b"\x5a" + model[mf[3] + mf[4] :]
struct.pack_into("<I", junk, mf[0] + 9, mf[4] + 1)
case("payload-extra-byte.nnz", bytes(junk), "Corrupt", "")
# a short frame before the last: two stored frames of 10 bytes in a stream of 4 KiB chunks
stored = b"\x02" + struct.pack("<II", 10, 0) + b"0123456789"
case("short-frame-not-last.nnz", header(6, mid, 4096) + stored + stored + end(20), "Corrupt", "shorter than the chunk size")
# trailing data after a complete archive
case("trailing-garbage.nnz", model + b"garbage", "TrailingData", "after the end of the archive")
case("trailing-zeros.nnz", model + b"\x00" * 16, "TrailingData", "after the end of the archive")
# time bombs: frames that claim 64 MiB of content (and 64M tokens) with an empty payload
M = 64 << 20
bomb_direct = b"\x05" + struct.pack("<IIII", M, M, 0, 0)
bomb_cm = b"\x04" + struct.pack("<III", M, 0, 0)
bomb_model = b"\x01" + struct.pack("<IIII", M, M, 0, 0)
bomb_blend = b"\x06" + struct.pack("<IIII", M, M, 0, 0)
# a blend frame's tokens each code at least 8 bits: 64M / 8 tokens claim as much work
bomb_blend_few = b"\x06" + struct.pack("<IIII", M, M // 8, 0, 0)
case("bomb-blend-v6.nnz", header(6, mid, M) + bomb_blend + end(M), "Corrupt", "payload can hold")
bomb_bwt = b"\x07" + struct.pack("<IIII", M, 1, 0, 0)
case("bomb-bwt-v7.nnz", header(7, mid, M) + bomb_bwt + end(M), "Corrupt", "payload can hold")
# a fast BWT frame codes at least one run flag a byte
bomb_fast = b"\x08" + struct.pack("<IIII", M, 1, 0, 0)
case("bomb-fast-bwt-v8.nnz", header(8, mid, M) + bomb_fast + end(M), "Corrupt", "payload can hold")
case("bomb-blend-v6-few-tokens.nnz", header(6, mid, M) + bomb_blend_few + end(M), "Corrupt", "payload can hold")
for v in (4, 5):
    ok = "frame checksum" if v == 4 else "payload can hold"
    case(f"bomb-direct-v{v}.nnz", header(v, mid, M) + bomb_direct + end(M), "Corrupt", ok)
    case(f"bomb-cm-v{v}.nnz", header(v, mid, M) + bomb_cm + end(M), "Corrupt", ok)
    case(f"bomb-model-v{v}.nnz", header(v, mid, M) + bomb_model + end(M), "Corrupt", "" if v == 4 else ok)
# old whole-token model frames (versions 1 and 2) claiming 64M tokens
for v in (1, 2):
    tail_end = (b"\x00" + struct.pack("<QQ", M, 0)) if v == 1 else end(M)
    case(f"bomb-model-v{v}.nnz", header(v, mid, M) + bomb_model + tail_end, "Corrupt", "")
# version-4 bombs whose payload leaves a non-zero code: old versions allow zeros past the end, but
# not 64 of them while the code is not zero
tail = b"\0" * 6 + b"\x01"
case("bomb-cm-v4-nonzero-tail.nnz", header(4, mid, M) + b"\x04" + struct.pack("<III", M, 7, 0) + tail + end(M), "Corrupt", "ends too early")
case("bomb-direct-v4-nonzero-tail.nnz", header(4, mid, M) + b"\x05" + struct.pack("<IIII", M, M, 7, 0) + tail + end(M), "Corrupt", "")
# a non-minimal varint in the end frame
case("end-varint-not-minimal.nnz", model[: frames(model)[-1][0]] + b"\x00" + bytes([(len(read("sample.txt")) & 0x7F) | 0x80, (len(read("sample.txt")) >> 7) | 0x80, 0]) + model[-8:], "Corrupt", "not minimal")
# a header whose chunk size was changed: the end checksum covers the header
case("chunk-size-changed.nnz", model[:24] + struct.pack("<I", 5000) + model[28:], "Corrupt", "content checksum")
case("version-changed.nnz", changed(read("server.log.nnz"), 4, 4), "Corrupt", "")
# a version-5 bomb with a 1-byte payload that ends in a non-zero byte: still bounded by the payload
small = b"\x04" + struct.pack("<III", M, 1, 0) + b"\x01"
case("bomb-cm-v5-one-byte.nnz", header(5, mid, M) + small + end(M), "Corrupt", "payload can hold")
case("bomb-cm-v6-one-byte.nnz", header(6, mid, M) + small + end(M), "Corrupt", "payload can hold")
bomb_deep = b"\x09" + struct.pack("<III", M, 0, 0)
case("bomb-deep-cm-v10.nnz", header(10, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v11.nnz", header(11, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v12.nnz", header(12, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v13.nnz", header(13, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v14.nnz", header(14, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
bomb_mid_cm = b"\x0a" + struct.pack("<III", M, 0, 0)
case("bomb-mid-cm-v14.nnz", header(14, mid, M) + bomb_mid_cm + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v15.nnz", header(15, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v16.nnz", header(16, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v17.nnz", header(17, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-mid-cm-v17.nnz", header(17, mid, M) + bomb_mid_cm + end(M), "Corrupt", "payload can hold")
case("bomb-cm-v18.nnz", header(18, mid, M) + b"\x04" + struct.pack("<III", M, 0, 0) + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v18.nnz", header(18, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-mid-cm-v18.nnz", header(18, mid, M) + bomb_mid_cm + end(M), "Corrupt", "payload can hold")
case("bomb-cm-v19.nnz", header(19, mid, M) + b"\x04" + struct.pack("<III", M, 0, 0) + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v19.nnz", header(19, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-deep-cm-v20.nnz", header(20, mid, M) + bomb_deep + end(M), "Corrupt", "payload can hold")
case("bomb-mid-cm-v20.nnz", header(20, mid, M) + bomb_mid_cm + end(M), "Corrupt", "payload can hold")

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if f.endswith(".nnz"):
        os.remove(os.path.join(OUT, f))
with open(os.path.join(OUT, "expect.tsv"), "w") as t:
    t.write("# file\terror kind\tmessage fragment (empty: any)\n")
    for name, (data, kind, msg) in sorted(cases.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        t.write(f"{name}\t{kind}\t{msg}\n")
print(f"{len(cases)} archives in {OUT}")
