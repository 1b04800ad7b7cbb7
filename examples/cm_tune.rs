//! Development tool: the coding cost of the context mixer on files, with the transformer's bit
//! predictions cached on disk (the transformer is the slow part; the mixer is what gets tuned).
//!
//!     cargo run --release --example cm_tune -- FILE...
//!
//! Prints, per file: size, transformer alone (bits coded one by one), transformer + mixer, and
//! `xz -9e` for comparison (all in bytes).

use nnz::backend::{cpu::CpuBackend, Backend};
use nnz::cm::{classes_of, ByteModel, SymbolCm};
use nnz::model::Model;
use nnz::table::{cumulate, table_bit, BitPred};
use std::io::Write;
use std::path::Path;

const CHUNK: usize = 1 << 20;

struct Chunk {
    tokens: Vec<u32>,
    /// per token, per bit: P(1) from the transformer, 0 when forced
    preds: Vec<u16>,
}

fn cache_path(file: &str) -> std::path::PathBuf {
    let name: String = file
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '.' { c } else { '_' })
        .collect();
    Path::new("/tmp/nnz-tf").join(name)
}

fn compute(backend: &CpuBackend, data: &[u8], nbits: u32) -> Vec<Chunk> {
    use rayon::prelude::*;
    let model = backend.model();
    data.par_chunks(CHUNK)
        .map(|c| {
            let ids = model.tokenizer.encode(c).unwrap();
            let mut stream = backend.stream();
            let v = model.cfg.vocab;
            let mut table = vec![0u32; v];
            let mut cum = Vec::new();
            let mut preds = Vec::new();
            let mut prev = model.cfg.bos();
            for &t in &ids {
                stream.feed(&[prev], &mut table).unwrap();
                cumulate(&table, &mut cum);
                let mut node = 1u32;
                for k in 0..nbits {
                    let bit = (t >> (nbits - 1 - k)) & 1;
                    preds.push(match table_bit(&cum, node, nbits) {
                        BitPred::Forced(_) => 0,
                        BitPred::P(p) => p as u16,
                    });
                    node = node * 2 + bit;
                }
                prev = t;
            }
            Chunk { tokens: ids, preds }
        })
        .collect()
}

fn load_or_compute(backend: &CpuBackend, file: &str, nbits: u32) -> Vec<Chunk> {
    let path = cache_path(file);
    if let Ok(b) = std::fs::read(&path) {
        let mut out = Vec::new();
        let mut i = 0;
        let rd = |i: &mut usize| {
            let v = u32::from_le_bytes(b[*i..*i + 4].try_into().unwrap());
            *i += 4;
            v
        };
        while i < b.len() {
            let n = rd(&mut i) as usize;
            let tokens: Vec<u32> = (0..n).map(|_| rd(&mut i)).collect();
            let preds: Vec<u16> = (0..n * nbits as usize)
                .map(|_| {
                    let v = u16::from_le_bytes([b[i], b[i + 1]]);
                    i += 2;
                    v
                })
                .collect();
            out.push(Chunk { tokens, preds });
        }
        return out;
    }
    let data = std::fs::read(file).unwrap();
    let chunks = compute(backend, &data, nbits);
    std::fs::create_dir_all("/tmp/nnz-tf").unwrap();
    let mut f = std::fs::File::create(&path).unwrap();
    for c in &chunks {
        f.write_all(&(c.tokens.len() as u32).to_le_bytes()).unwrap();
        for t in &c.tokens {
            f.write_all(&t.to_le_bytes()).unwrap();
        }
        for p in &c.preds {
            f.write_all(&p.to_le_bytes()).unwrap();
        }
    }
    chunks
}

fn cost(p1: i32, bit: u32) -> f64 {
    let p = if bit == 1 { p1 } else { 4096 - p1 };
    -(p as f64 / 4096.0).log2()
}

fn xz_size(file: &str) -> u64 {
    let cache = cache_path(file).with_extension("xz-size");
    if let Ok(s) = std::fs::read_to_string(&cache) {
        return s.trim().parse().unwrap();
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("xz -9e -c '{file}' | wc -c"))
        .output()
        .unwrap();
    let n = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    std::fs::write(cache, n.to_string()).unwrap();
    n
}

fn run_file(backend: &CpuBackend, file: &str, nbits: u32, classes: &[u8]) -> (u64, f64, f64, f64, u64) {
    let chunks = load_or_compute(backend, file, nbits);
    let (mut tf, mut cm_bits) = (0.0, 0.0);
    let raw = std::fs::metadata(file).unwrap().len();
    for c in &chunks {
        let mut cm = SymbolCm::for_tokens(nbits, c.tokens.len() as u64, classes.to_vec());
        for (i, &t) in c.tokens.iter().enumerate() {
            let before = cm_bits;
            for k in 0..nbits {
                let bit = (t >> (nbits - 1 - k)) & 1;
                let p = c.preds[i * nbits as usize + k as usize] as i32;
                if p == 0 {
                    cm.skip(bit);
                    continue;
                }
                tf += cost(p, bit);
                let q = cm.predict(Some(p));
                cm_bits += cost(q, bit);
                cm.update(bit);
            }
            if std::env::var_os("DUMP").is_some() {
                eprintln!("{}\t{:.2}", t, cm_bits - before);
            }
        }
    }
    let data = std::fs::read(file).unwrap();
    let mut byte_bits = 0.0;
    for c in data.chunks(CHUNK) {
        let mut cm = SymbolCm::for_bytes(
            c.len() as u64,
            ByteModel {
                records: true,
                ..Default::default()
            },
        );
        for &b in c {
            for k in 0..8 {
                let bit = (b as u32 >> (7 - k)) & 1;
                let q = cm.predict(None);
                byte_bits += cost(q, bit);
                cm.update(bit);
            }
        }
    }
    (raw, tf / 8.0, cm_bits / 8.0, byte_bits / 8.0, xz_size(file))
}

fn main() {
    use rayon::prelude::*;
    let files: Vec<String> = std::env::args().skip(1).collect();
    let model = Model::default_model().unwrap();
    let nbits = 32 - (model.cfg.vocab as u32 - 1).leading_zeros();
    let classes = classes_of(model.cfg.vocab, |s| model.tokenizer.piece(s));
    let backend = CpuBackend::new(model);
    let rows: Vec<_> = files
        .par_iter()
        .map(|f| run_file(&backend, f, nbits, &classes))
        .collect();
    let (mut t_tf, mut t_cm, mut t_xz, mut t_raw) = (0.0, 0.0, 0u64, 0u64);
    let mut groups: std::collections::BTreeMap<String, (f64, u64)> = Default::default();
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "file", "bytes", "tf", "tf+cm", "bytecm", "xz", "best/xz"
    );
    for (file, &(raw, tfb, cmb, bcm, xz)) in files.iter().zip(&rows) {
        let cmb = if std::env::var_os("NOBYTE").is_some() {
            cmb
        } else {
            cmb.min(bcm)
        };
        let name = file
            .rsplit('/')
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("/");
        println!(
            "{:<40} {:>9} {:>9.0} {:>9.0} {:>9.0} {:>9} {:>6.3}",
            name,
            raw,
            tfb,
            cmb,
            bcm,
            xz,
            cmb / xz as f64
        );
        let g = groups.entry(name.split('/').next().unwrap().to_string()).or_default();
        g.0 += cmb.min(xz as f64);
        g.1 += xz;
        t_tf += tfb;
        t_cm += cmb;
        t_xz += xz;
        t_raw += raw;
    }
    println!(
        "{:<40} {:>9} {:>9.0} {:>9.0} {:>9} {:>6.3}",
        "total",
        t_raw,
        t_tf,
        t_cm,
        t_xz,
        t_cm / t_xz as f64
    );
    for (g, (c, x)) in groups {
        println!("group {g:<12} min(cm,xz) {c:>9.0} xz {x:>9} ratio {:.3}", c / x as f64);
    }
}
