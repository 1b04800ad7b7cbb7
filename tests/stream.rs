//! The streaming API: `Encoder` and `Decoder` give the same archives and content as the whole-stream
//! calls, through `io::copy` and writes of any size, and report damage as `InvalidData`.

mod common;
use nnz::backend::cpu::CpuBackend;
use nnz::backend::Backend;
use nnz::codec::{self, Input, Options};
use nnz::{CompressOptions, DecompressOptions};
use std::io::{self, Read, Write};
use std::sync::Arc;

fn tiny() -> Arc<dyn Backend> {
    Arc::new(CpuBackend::new(common::tiny_model()))
}

/// The content of `archive`, read back through a `Decoder` over `b`.
fn decode(b: Arc<dyn Backend>, archive: &[u8]) -> Vec<u8> {
    let mut back = Vec::new();
    DecompressOptions::new()
        .backend(b)
        .decoder(archive)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    back
}

fn data() -> Vec<u8> {
    let mut d = std::fs::read(common::root().join("testdata/golden/sample.txt")).unwrap();
    d.extend(common::Lcg(9).bytes(3000));
    d.extend(std::fs::read(common::root().join("testdata/golden/server.log")).unwrap());
    d
}

#[test]
fn encoder_writes_what_compress_writes() {
    let b = tiny();
    let data = data();
    for chunk in [1000u32, 4096, 1 << 20] {
        let mut whole = Vec::new();
        let opts = Options {
            chunk_size: chunk,
            ..Default::default()
        };
        codec::compress(b.as_ref(), Input::Slice(&data), &mut whole, &opts).unwrap();
        // one copy, and writes of odd sizes
        let mut enc = CompressOptions::new()
            .backend(b.clone())
            .chunk_size(chunk)
            .encoder(Vec::new())
            .unwrap();
        io::copy(&mut &data[..], &mut enc).unwrap();
        assert_eq!(enc.finish().unwrap(), whole, "chunk {chunk}: io::copy");
        let mut enc = CompressOptions::new()
            .backend(b.clone())
            .chunk_size(chunk)
            .encoder(Vec::new())
            .unwrap();
        for piece in data.chunks(777) {
            enc.write_all(piece).unwrap();
            enc.flush().unwrap();
        }
        let (archive, stats) = enc.finish_with_stats().unwrap();
        assert_eq!(archive, whole, "chunk {chunk}: small writes");
        assert_eq!(stats.raw_bytes, data.len() as u64);
        assert_eq!(stats.packed_bytes, archive.len() as u64);
        // and back, through io::copy and small reads
        let mut dec = DecompressOptions::new()
            .backend(b.clone())
            .decoder(&archive[..])
            .unwrap();
        let mut back = Vec::new();
        io::copy(&mut dec, &mut back).unwrap();
        assert_eq!(back, data);
        let mut dec = DecompressOptions::new()
            .backend(b.clone())
            .decoder(&archive[..])
            .unwrap();
        let mut back = Vec::new();
        let mut buf = [0u8; 333];
        loop {
            let n = dec.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        assert_eq!(back, data);
    }
}

#[test]
fn empty_and_concatenated_streams() {
    let b = tiny();
    let empty = CompressOptions::new()
        .backend(b.clone())
        .encoder(Vec::new())
        .unwrap()
        .finish()
        .unwrap();
    assert!(decode(b.clone(), &empty).is_empty());
    let mut one = CompressOptions::new().backend(b.clone()).encoder(Vec::new()).unwrap();
    one.write_all(b"hello ").unwrap();
    let one = one.finish().unwrap();
    let both = [one.clone(), empty, one].concat();
    assert_eq!(decode(b, &both), b"hello hello ");
}

#[test]
fn damage_is_invalid_data_with_the_error_inside() {
    let b = tiny();
    let mut enc = CompressOptions::new()
        .backend(b.clone())
        .chunk_size(2000)
        .encoder(Vec::new())
        .unwrap();
    enc.write_all(&data()).unwrap();
    let archive = enc.finish().unwrap();
    for (what, bad) in [
        ("truncated", archive[..archive.len() - 5].to_vec()),
        ("trailing data", [archive.clone(), b"junk".to_vec()].concat()),
        ("changed", {
            let mut a = archive.clone();
            let n = a.len();
            a[n / 2] ^= 4;
            a
        }),
    ] {
        let mut dec = DecompressOptions::new().backend(b.clone()).decoder(&bad[..]).unwrap();
        let mut back = Vec::new();
        let e = dec.read_to_end(&mut back).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{what}: {e}");
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<nnz::Error>());
        assert!(inner.is_some(), "{what}: the nnz::Error is inside");
        assert!(
            data().starts_with(&back),
            "{what}: read bytes that are not in the original"
        );
    }
    // an archive of a model that is neither this backend's nor built in
    let e = DecompressOptions::new()
        .decoder(&archive[..])
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(matches!(
        e.get_ref().and_then(|i| i.downcast_ref()),
        Some(nnz::Error::WrongModel { .. })
    ));
    // an archive of a built-in model decodes whatever model the backend runs
    let mut builtin = CompressOptions::new().encoder(Vec::new()).unwrap();
    builtin.write_all(b"made with the built-in model").unwrap();
    assert_eq!(decode(b, &builtin.finish().unwrap()), b"made with the built-in model");
}

#[test]
fn a_cancelled_call_stops() {
    let cancel = nnz::Cancel::new();
    cancel.cancel();
    let mut enc = CompressOptions::new()
        .backend(tiny())
        .chunk_size(1000)
        .cancel(cancel)
        .encoder(Vec::new())
        .unwrap();
    let e = enc
        .write_all(&data())
        .and_then(|_| enc.finish().map(|_| ()).map_err(io::Error::from))
        .unwrap_err();
    assert!(
        matches!(
            e.get_ref().and_then(|i| i.downcast_ref()),
            Some(nnz::Error::Interrupted)
        ),
        "{e}"
    );
}
