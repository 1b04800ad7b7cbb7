//! Development tool: the coding cost of blend frames on files, with the transformer's part cached
//! on disk, so that changes to the byte mixer of blend frames can be measured in seconds.
//!
//!     cargo run --release --example blend_tune -- FILE...
//!
//! The first run codes each file as blend frames (1 MiB chunks, the default model) and stores,
//! per byte, its position in its token and the transformer's probability of each bit (0 where the
//! bit is not coded), and per chunk the cost of the token-end decisions, in `/tmp/nnz-blend-19`
//! (the tables of format 19's adaptive output layer; it also prints what the tokens cost under
//! the model's own tables and the adapted ones, and the adapted layer's time per token), or with
//! `FIXED_HEAD=1` in `/tmp/nnz-blend` (the model's own tables, as formats 6 to 18). Those do not
//! depend on the byte mixer (the decisions see its match model only, which this tool must not be
//! used to change). Every run then replays the bits through the byte mixer of blend frames and
//! prints, per file, the bytes of the bits, of the decisions and of both, and the byte mixer's
//! single-core time: format 18's byte mixer (also format 19's), or with `FORMAT15=1` format 15's
//! (to 17's), with `FORMAT13=1` format 13's (and 14's).

use nnz::backend::cpu::{CpuBackend, CpuStream};
use nnz::backend::{Backend, Stream};
use nnz::cm::boundary::{Boundary, Guess};
use nnz::cm::{BlendModel, SymbolCm};
use nnz::model::adapt::AdaptiveHead;
use nnz::model::Model;
use nnz::table::split_p;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

const CHUNK: usize = 1 << 20;

/// One chunk's trace: per byte, its depth in its token and eight bit probabilities.
struct Trace {
    bytes: Vec<u8>,
    depth: Vec<u8>,
    preds: Vec<u16>,
    /// bits the token-end decisions cost
    ends: f64,
    /// the token-end decisions, as the boundary predictor sees them
    decisions: Vec<Decision>,
}

/// A token-end decision: the arguments of `Boundary::predict`, where in the chunk, and the bit.
#[derive(Clone, Copy)]
struct Decision {
    pos: u32,
    p: u16,
    prefix: u32,
    prev: u32,
    depth: u8,
    guess: u8,
    guess_len: u32,
    recent: u64,
    bit: u8,
}

impl Decision {
    const BYTES: usize = 4 + 2 + 4 + 4 + 1 + 1 + 4 + 8 + 1;

    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.pos.to_le_bytes());
        out.extend(self.p.to_le_bytes());
        out.extend(self.prefix.to_le_bytes());
        out.extend(self.prev.to_le_bytes());
        out.push(self.depth);
        out.push(self.guess);
        out.extend(self.guess_len.to_le_bytes());
        out.extend(self.recent.to_le_bytes());
        out.push(self.bit);
    }

    fn read(b: &[u8]) -> Decision {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        Decision {
            pos: u32_at(0),
            p: u16::from_le_bytes([b[4], b[5]]),
            prefix: u32_at(6),
            prev: u32_at(10),
            depth: b[14],
            guess: b[15],
            guess_len: u32_at(16),
            recent: u64::from_le_bytes(b[20..28].try_into().unwrap()),
            bit: b[28],
        }
    }

    fn guess(&self) -> (Guess, u32) {
        let g = match self.guess {
            1 => Guess::GoesOn,
            2 => Guess::Ends,
            _ => Guess::None,
        };
        (g, self.guess_len)
    }
}

fn cost(p1: i32, bit: u32) -> f64 {
    -((if bit == 1 { p1 } else { 4096 - p1 }) as f64 / 4096.0).log2()
}

fn cache_path(file: &str) -> PathBuf {
    let name: String = file
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '.' { c } else { '_' })
        .collect();
    Path::new(&cache_dir()).join(name)
}

/// Whether the traces use format 19's adaptive output layer.
fn adaptive() -> bool {
    std::env::var_os("FIXED_HEAD").is_none()
}

fn cache_dir() -> &'static str {
    if adaptive() {
        "/tmp/nnz-blend-19"
    } else {
        "/tmp/nnz-blend"
    }
}

/// The trace of one chunk, coded as the encoder of blend frames codes it (format 13's byte mixer).
fn trace(backend: &CpuBackend, data: &[u8]) -> Trace {
    let model = backend.model();
    let vocab = model.cfg.vocab;
    let lex = model.tokenizer.lex();
    let ids = model.tokenizer.encode(data).unwrap();
    let mut stream = CpuStream::new(model);
    let mut table = vec![0u32; vocab];
    let mut cum = Vec::new();
    let mut cm = SymbolCm::for_blended_bytes(data.len() as u64, BlendModel::Format13);
    let mut ends = Boundary::new(vocab, None, false);
    let mut out = Trace {
        bytes: data.to_vec(),
        depth: Vec::with_capacity(data.len()),
        preds: Vec::with_capacity(8 * data.len()),
        ends: 0.0,
        decisions: Vec::new(),
    };
    let mut prev = model.cfg.bos();
    let mut recent = 0u64;
    let mut pos = 0;
    // the adapting head, and one that never learns (the model's own tables, to compare)
    let mut head = adaptive().then(|| (AdaptiveHead::new(model), AdaptiveHead::new(model)));
    let mut direct = (0.0, 0.0);
    let mut tt = (0.0, 0.0);
    let mut hb = vec![0i8; model.cfg.d_model];
    for &id in &ids {
        if let Some((h, fixed)) = &mut head {
            stream.feed_head(&[prev], &mut hb).unwrap();
            fixed.table(&hb, &mut table);
            let s: f64 = table.iter().map(|&f| f as f64).sum();
            direct.0 -= (table[id as usize] as f64 / s).log2();
            let t0 = Instant::now();
            h.table(&hb, &mut table);
            tt.0 += t0.elapsed().as_secs_f64();
            let s: f64 = table.iter().map(|&f| f as f64).sum();
            direct.1 -= (table[id as usize] as f64 / s).log2();
            let t0 = Instant::now();
            h.learn(id, &table);
            tt.1 += t0.elapsed().as_secs_f64();
        } else {
            stream.feed(&[prev], &mut table).unwrap();
        }
        lex.cumulate(&table, &mut cum);
        let known = model.tokenizer.piece(id).unwrap();
        let (mut lo, mut hi) = (0, lex.len());
        let mut depth = 0;
        loop {
            if depth > 0 {
                let exact = lex.piece(lo).len() == depth;
                let longer = hi - lo > exact as usize && pos < data.len();
                let end = if !exact {
                    false
                } else if !longer {
                    true
                } else {
                    let p = split_p((cum[hi] - cum[lo + 1]) as u64, (cum[lo + 1] - cum[lo]) as u64);
                    let guess = Guess::of(cm.guess(), lex, lo, hi, depth);
                    let q = ends.predict(p, lex.id(lo), prev, depth, recent, guess);
                    let bit = (depth == known.len()) as u32;
                    out.decisions.push(Decision {
                        pos: pos as u32,
                        p: p as u16,
                        prefix: lex.id(lo),
                        prev,
                        depth: depth.min(255) as u8,
                        guess: guess.0 as u8,
                        guess_len: guess.1,
                        recent,
                        bit: bit as u8,
                    });
                    out.ends += cost(q, bit);
                    ends.update(bit);
                    bit == 1
                };
                if end {
                    break;
                }
                lo += exact as usize;
            }
            let want = known[depth] as u32;
            cm.set_depth(depth);
            out.depth.push(depth.min(255) as u8);
            for k in (0..8).rev() {
                let high = cm.node() ^ (1 << (7 - k));
                let split = lex.first_with_byte_at_least(lo, hi, depth, (((high << 1) | 1) << k) as u8);
                let bit = (want >> k) & 1;
                if split == hi || split == lo {
                    out.preds.push(0);
                    cm.skip(bit);
                } else {
                    let p = split_p((cum[split] - cum[lo]) as u64, (cum[hi] - cum[split]) as u64);
                    out.preds.push(p as u16);
                    cm.predict(Some(p));
                    cm.update(bit);
                }
                if bit == 1 {
                    lo = split;
                } else {
                    hi = split;
                }
            }
            recent = (recent << 8) | cm.last_symbol() as u64;
            pos += 1;
            depth += 1;
        }
        prev = id;
    }
    assert_eq!(pos, data.len());
    if head.is_some() {
        eprintln!(
            "{} tokens: {:.0} bytes by the model's tables, {:.0} adapted; table {:.1} us, learn {:.1} us a token",
            ids.len(),
            direct.0 / 8.0,
            direct.1 / 8.0,
            tt.0 * 1e6 / ids.len() as f64,
            tt.1 * 1e6 / ids.len() as f64
        );
    }
    out
}

fn load_or_trace(backend: &CpuBackend, file: &str) -> Vec<Trace> {
    let path = cache_path(file);
    let data = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    if let Ok(b) = std::fs::read(&path) {
        let mut out = Vec::new();
        let mut i = 0;
        for c in data.chunks(CHUNK) {
            let n = c.len();
            let ends = f64::from_le_bytes(b[i..i + 8].try_into().unwrap());
            i += 8;
            let depth = b[i..i + n].to_vec();
            i += n;
            let preds = b[i..i + 16 * n]
                .chunks(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .collect();
            i += 16 * n;
            let m = u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
            i += 4;
            let decisions = b[i..i + m * Decision::BYTES]
                .chunks(Decision::BYTES)
                .map(Decision::read)
                .collect();
            i += m * Decision::BYTES;
            out.push(Trace {
                bytes: c.to_vec(),
                depth,
                preds,
                ends,
                decisions,
            });
        }
        return out;
    }
    let traces: Vec<Trace> = data.chunks(CHUNK).map(|c| trace(backend, c)).collect();
    std::fs::create_dir_all(cache_dir()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for t in &traces {
        f.write_all(&t.ends.to_le_bytes()).unwrap();
        f.write_all(&t.depth).unwrap();
        for p in &t.preds {
            f.write_all(&p.to_le_bytes()).unwrap();
        }
        let mut d = Vec::with_capacity(t.decisions.len() * Decision::BYTES);
        for e in &t.decisions {
            e.write(&mut d);
        }
        f.write_all(&(t.decisions.len() as u32).to_le_bytes()).unwrap();
        f.write_all(&d).unwrap();
    }
    traces
}

/// The bits of a chunk's bytes under the blend byte mixer of `model`.
fn replay(t: &Trace, model: BlendModel) -> f64 {
    let mut cm = SymbolCm::for_blended_bytes(t.bytes.len() as u64, model);
    let mut bits = 0.0;
    for (i, &b) in t.bytes.iter().enumerate() {
        cm.set_depth(t.depth[i] as usize);
        for k in 0..8 {
            let bit = (b as u32 >> (7 - k)) & 1;
            let p = t.preds[8 * i + k] as i32;
            if p == 0 {
                cm.skip(bit);
            } else {
                bits += cost(cm.predict(Some(p)), bit);
                cm.update(bit);
            }
        }
    }
    bits
}

/// The bits of a chunk's token-end decisions under the boundary predictor.
fn replay_ends(t: &Trace, vocab: usize, model: BlendModel) -> f64 {
    let larger = (model >= BlendModel::Format15).then_some(t.bytes.len() as u64);
    let mut ends = Boundary::new(vocab, larger, model >= BlendModel::Format18);
    let mut bits = 0.0;
    for d in &t.decisions {
        let q = ends.predict(d.p as i32, d.prefix, d.prev, d.depth as usize, d.recent, d.guess());
        bits += cost(q, d.bit as u32);
        ends.update(d.bit as u32);
    }
    bits
}

fn main() {
    use rayon::prelude::*;
    let files: Vec<String> = std::env::args().skip(1).collect();
    let format13 = std::env::var_os("FORMAT13").is_some();
    let model = if format13 {
        BlendModel::Format13
    } else if std::env::var_os("FORMAT15").is_some() {
        BlendModel::Format15
    } else {
        BlendModel::Format18
    };
    let backend = CpuBackend::new(Model::default_model().unwrap());
    let vocab = backend.model().cfg.vocab;
    let rows: Vec<_> = files
        .par_iter()
        .map(|f| {
            let traces = load_or_trace(&backend, f);
            let t = Instant::now();
            let bits: f64 = traces.iter().map(|c| replay(c, model)).sum();
            let ends: f64 = traces.iter().map(|c| replay_ends(c, vocab, model)).sum();
            let n: usize = traces.iter().map(|c| c.bytes.len()).sum();
            (n, bits / 8.0, ends / 8.0, t.elapsed().as_secs_f64())
        })
        .collect();
    let (mut raw, mut total, mut secs) = (0usize, 0.0, 0.0);
    for (f, &(n, b, e, s)) in files.iter().zip(&rows) {
        let name = f.rsplitn(3, '/').take(2).collect::<Vec<_>>();
        let name = name.into_iter().rev().collect::<Vec<_>>().join("/");
        println!(
            "{name:<32} {n:>9} bits {b:>9.0} ends {e:>7.0} all {:>9.0} {:>6.3} bpb {s:>6.2} s",
            b + e,
            8.0 * (b + e) / n as f64
        );
        raw += n;
        total += b + e;
        secs += s;
    }
    println!(
        "{:<32} {raw:>9} {total:>42.0} {:>6.3} bpb {secs:>6.2} s",
        "total",
        8.0 * total / raw as f64
    );
}
