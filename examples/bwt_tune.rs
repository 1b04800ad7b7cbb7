//! Development tool: the archive size and single-core speed of BWT frames (level 2) against fast
//! BWT frames (level 1) on files, both ways, with BWT frames alone.
//!
//!     cargo run --release --example bwt_tune -- FILE...
//!
//! Prints, per file: size, then per level the archive's size and its compress and decompress
//! speeds on one thread; the last line has the totals and bits per byte.

use nnz::codec::{self, Input, Method, Options};
use nnz::CpuBackend;
use std::time::Instant;

/// Archive size, compress seconds, decompress seconds of `data` at `level`.
fn measure(b: &CpuBackend, data: &[u8], level: u8) -> (usize, f64, f64) {
    let opts = Options {
        level,
        only: Some(Method::Bwt),
        ..Default::default()
    };
    let t = Instant::now();
    let mut packed = Vec::new();
    codec::compress(b, Input::Slice(data), &mut packed, &opts).unwrap();
    let tc = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut back = Vec::new();
    codec::decompress(b, &mut &packed[..], Some(&mut back), &opts).unwrap();
    let td = t.elapsed().as_secs_f64();
    assert!(back == data, "level {level} does not round-trip");
    (packed.len(), tc, td)
}

fn main() {
    let b = CpuBackend::built_in().unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let (mut n, mut tot) = (0usize, [(0usize, 0.0f64, 0.0f64); 2]);
    let mbps = |n: usize, s: f64| n as f64 / s / 1e6;
    for f in std::env::args().skip(1) {
        let data = std::fs::read(&f).unwrap();
        let r = pool.install(|| [measure(&b, &data, 2), measure(&b, &data, 1)]);
        print!("{:24} {:9}", f.rsplit('/').next().unwrap(), data.len());
        for (t, x) in tot.iter_mut().zip(r) {
            print!(
                "  {:8} {:5.2} {:5.2} MB/s",
                x.0,
                mbps(data.len(), x.1),
                mbps(data.len(), x.2)
            );
            *t = (t.0 + x.0, t.1 + x.1, t.2 + x.2);
        }
        println!("  {:+.2}%", (r[1].0 as f64 / r[0].0 as f64 - 1.0) * 100.0);
        n += data.len();
    }
    print!("{:24} {:9}", "all", n);
    for t in tot {
        print!("  {:8} {:5.2} {:5.2} MB/s", t.0, mbps(n, t.1), mbps(n, t.2));
    }
    println!(
        "  bpb {:.3} {:.3}",
        8.0 * tot[0].0 as f64 / n as f64,
        8.0 * tot[1].0 as f64 / n as f64
    );
}
