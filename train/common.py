"""Constants and tables shared by the trainer, the exporter and the integer reference.

Everything here mirrors src/model/arith.rs, src/table.rs and docs/MODEL.md. Changing a constant changes the
arithmetic contract: bump ARITH_VERSION and regenerate testdata/ when you do.
"""
import math

ARITH_VERSION = 1

RES_FRAC = 10               # residual stream: x_real = x_int / 2**RES_FRAC
RES_MAX = (1 << 23) - 1     # residual values are clamped to [-RES_MAX, RES_MAX]
MUL_SHIFT = 24              # every requantization: (acc * m + 2**23) >> 24
NORM_A = 16                 # norm output: a = clamp(round(x * NORM_A / rms), -127, 127)
GELU_IN_DEN = 32            # GELU LUT input unit: 1/32
GELU_HALF = 256             # GELU LUT index = clamp(h, -256, 255) + 256
GELU_OUT_DEN = 16           # GELU LUT output unit: 1/16
ATT_DEN = 32                # attention logits unit: 1/32 nat
ATT_EXP_ONE = 1 << 12       # attention exp table scale
ATT_EXP_N = 320             # attention exp table length (last entry 0)
OUT_DEN = 64                # output logits unit: 1/64 nat
OUT_EXP_ONE = 1 << 20       # output exp table scale
OUT_EXP_N = 1024            # output exp table length (last entry 0)
FREQ_BUDGET = 1 << 24       # frequency tables sum to at most this

# Tokenizer: GPT-2's byte -> char table, all 256 bytes.
def byte_table():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = [None] * 256
    for b, c in zip(bs, cs):
        table[b] = chr(c)
    return table

BYTE_TO_CHAR = byte_table()
CHAR_TO_BYTE = {c: b for b, c in enumerate(BYTE_TO_CHAR)}

def bytes_to_mapped(data: bytes) -> str:
    return "".join(BYTE_TO_CHAR[b] for b in data)

def mapped_to_bytes(s: str) -> bytes:
    return bytes(CHAR_TO_BYTE[c] for c in s)

def _cls(byte_values):
    return "".join("\\u%04x" % ord(BYTE_TO_CHAR[b]) for b in byte_values)

# Pre-tokenizer regex over mapped chars: words with an optional leading space, up to 3 digits,
# punctuation runs, and whitespace runs that leave the last space to the following word.
_SPACE = BYTE_TO_CHAR[0x20]
_LETTERS = _cls(list(range(65, 91)) + list(range(97, 123)) + list(range(128, 256)))
_DIGITS = _cls(range(48, 58))
_WS = _cls([0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D])
PRETOKENIZE_REGEX = (
    f"{_SPACE}?[{_LETTERS}]+|{_SPACE}?[{_DIGITS}]{{1,3}}|{_SPACE}?[^{_LETTERS}{_DIGITS}{_WS}]+"
    f"|[{_WS}]+(?![^{_WS}])|[{_WS}]+"
)

def gelu_table():
    out = []
    for i in range(2 * GELU_HALF):
        x = (i - GELU_HALF) / GELU_IN_DEN
        g = 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))
        out.append(max(-127, min(127, int(math.floor(g * GELU_OUT_DEN + 0.5)))))
    return out

def exp_table(one, den, n):
    t = [int(math.floor(one * math.exp(-d / den) + 0.5)) for d in range(n)]
    t[-1] = 0
    return t

ATT_EXP = exp_table(ATT_EXP_ONE, ATT_DEN, ATT_EXP_N)
OUT_EXP = exp_table(OUT_EXP_ONE, OUT_DEN, OUT_EXP_N)
GELU = gelu_table()
