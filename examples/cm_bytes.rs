//! Development tool: the coding cost of the byte mixer alone (CM frames, or deep CM frames with
//! `DEEP=1`, mid CM frames with `MID=1`, less what `OFF` names; format 12's contexts and rates with `FORMAT12=1`) on files,
//! in 1 MiB chunks (`CHUNK_KIB` to change), and the CPU time it took: the quick loop for tuning
//! the byte mixer without running the whole codec.
//!
//!     cargo run --release --example cm_bytes -- FILE...

use nnz::cm::{ByteModel, SymbolCm};
use std::time::Instant;

fn chunk() -> usize {
    std::env::var("CHUNK_KIB").map_or(1 << 20, |s| s.parse::<usize>().unwrap() << 10)
}

/// `OFF=HLIRJNUW`: leave out of a deep run its bit histories (H), long match (L), image model (I),
/// run model (R), JPEG model (J), number model (N) or URL model (U); out of any run the mixers'
/// warm-up (W).
fn off(part: char) -> bool {
    std::env::var("OFF").is_ok_and(|s| s.contains(part))
}

fn cost(p1: i32, bit: u32) -> f64 {
    -((if bit == 1 { p1 } else { 4096 - p1 }) as f64 / 4096.0).log2()
}

/// Bytes the chunks of `data` would cost, and the seconds it took.
fn run(data: &[u8], deep: bool) -> (f64, f64) {
    let t = Instant::now();
    let mut bits = 0.0;
    for c in data.chunks(chunk()) {
        let mut cm = SymbolCm::for_bytes(
            c.len() as u64,
            ByteModel {
                records: true,
                histories: deep && !off('H'),
                long_match: deep && !off('L'),
                image: deep && !off('I'),
                words: std::env::var_os("FORMAT12").is_none(),
                mid: deep && std::env::var_os("MID").is_some(),
                runs: deep && std::env::var_os("MID").is_none() && !off('R'),
                jpeg: deep && !off('J'),
                numbers: deep && !off('N'),
                urls: deep && !off('U'),
                warmup: !off('W'),
            },
        );
        for &b in c {
            for k in (0..8).rev() {
                let bit = (b as u32 >> k) & 1;
                bits += cost(cm.predict(None), bit);
                cm.update(bit);
            }
        }
    }
    (bits / 8.0, t.elapsed().as_secs_f64())
}

fn main() {
    use rayon::prelude::*;
    let files: Vec<String> = std::env::args().skip(1).collect();
    let deep = std::env::var_os("DEEP").is_some() || std::env::var_os("MID").is_some();
    let rows: Vec<_> = files
        .par_iter()
        .map(|f| {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            let (bytes, secs) = run(&data, deep);
            (data.len(), bytes, secs)
        })
        .collect();
    let (mut raw, mut total, mut secs) = (0usize, 0.0, 0.0);
    for (f, &(n, b, s)) in files.iter().zip(&rows) {
        // the file and its folder
        let name = f.rsplitn(3, '/').take(2).collect::<Vec<_>>();
        let name = name.into_iter().rev().collect::<Vec<_>>().join("/");
        println!("{name:<32} {n:>9} {b:>10.0} {:>6.3} bpb {s:>6.2} s", 8.0 * b / n as f64);
        raw += n;
        total += b;
        secs += s;
    }
    println!(
        "{:<32} {raw:>9} {total:>10.0} {:>6.3} bpb {secs:>6.2} s ({:.3} MB/s a core)",
        "total",
        8.0 * total / raw as f64,
        raw as f64 / secs / 1e6
    );
}
