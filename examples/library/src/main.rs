//! nnz as a library, from an outside crate built without nnz's command line: compress a file
//! through `Encoder` with `io::copy`, decompress it through `Decoder`, check the round trip; then
//! the same for a stream made in memory.
//!
//!     cargo run --release --manifest-path examples/library/Cargo.toml -- FILE
use std::fs::File;
use std::io::{self, BufReader, Read, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: nnz-library-example FILE")?;

    // a file: FILE -> FILE.nnz -> back, with the built-in model on the CPU
    let archive = format!("{path}.example.nnz");
    let mut enc = nnz::CompressOptions::new().encoder(File::create(&archive)?)?;
    io::copy(&mut BufReader::new(File::open(&path)?), &mut enc)?;
    let (_, stats) = enc.finish_with_stats()?;
    let mut back = Vec::new();
    nnz::Decoder::new(BufReader::new(File::open(&archive)?))?.read_to_end(&mut back)?;
    std::fs::remove_file(&archive)?;
    if back != std::fs::read(&path)? {
        return Err("the round trip changed the file".into());
    }
    println!(
        "{path}: {} -> {} bytes ({:.3} bits/byte), round trip ok",
        stats.raw_bytes,
        stats.packed_bytes,
        stats.bits_per_byte()
    );

    // a stream in memory, written in pieces, with a memory limit
    let text = b"a line of a log, with a counter: 12345\n".repeat(200);
    let mut enc = nnz::CompressOptions::new().memory_limit(512 << 20).encoder(Vec::new())?;
    for line in text.chunks(40) {
        enc.write_all(line)?;
    }
    let packed = enc.finish()?;
    let mut back = Vec::new();
    nnz::Decoder::new(&packed[..])?.read_to_end(&mut back)?;
    assert_eq!(back, text);
    println!("stream: {} -> {} bytes, round trip ok", text.len(), packed.len());
    Ok(())
}
