//! Hostile and damaged archives: the golden bad archives of testdata/bad/ give their errors (and
//! the time bombs among them are rejected without the work they claim), and every truncation and
//! every single-byte change of a small archive of each frame kind is rejected, with nothing but a
//! prefix of the original ever written.

mod common;
use nnz::backend::cpu::CpuBackend;
use nnz::codec::{self, Input, Method, Options};
use nnz::Error;
use std::time::Instant;

fn backend() -> CpuBackend {
    CpuBackend::new(common::tiny_model())
}

/// The name of an error's kind, as testdata/bad/expect.tsv spells it.
fn kind(e: &Error) -> &'static str {
    match e {
        Error::Io(_) => "Io",
        Error::NotAnArchive => "NotAnArchive",
        Error::FutureVersion(..) => "FutureVersion",
        Error::Corrupt(_) => "Corrupt",
        Error::Truncated => "Truncated",
        Error::TrailingData => "TrailingData",
        Error::WrongModel { .. } => "WrongModel",
        _ => "other",
    }
}

/// Decode to a buffer; the output written so far comes back with the error.
fn unpack(b: &CpuBackend, archive: &[u8]) -> (Vec<u8>, nnz::Result<()>) {
    let mut out = Vec::new();
    let r = codec::decompress(b, &mut &archive[..], Some(&mut out), &Options::default()).map(|_| ());
    (out, r)
}

#[test]
fn bad_archives_give_their_errors() {
    let b = backend();
    let dir = common::root().join("testdata/bad");
    let expect = std::fs::read_to_string(dir.join("expect.tsv")).unwrap();
    let mut n = 0;
    for line in expect.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, want, msg) = (f[0], f[1], f[2]);
        let archive = std::fs::read(dir.join(name)).unwrap();
        let t = Instant::now();
        let (_, r) = unpack(&b, &archive);
        let secs = t.elapsed().as_secs_f64();
        let e = r.expect_err(name);
        assert_eq!(kind(&e), want, "{name}: {e}");
        assert!(e.to_string().contains(msg), "{name}: {e:?} does not say {msg:?}");
        // listing checks the framing too, and never runs the model
        let framing = !matches!(want, "Corrupt" | "WrongModel");
        if framing || msg.contains("shorter") || msg.contains("payload can hold") {
            assert!(codec::list(&mut &archive[..]).is_err(), "{name}: -l accepts it");
        }
        println!("{name}: {want} in {secs:.3} s");
        n += 1;
    }
    assert!(n >= 30, "only {n} bad archives");
}

/// Small archives of every frame kind, with the content each holds.
fn small_archives(b: &CpuBackend) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let text = b"The quick brown fox jumps over the lazy dog. The quick brown fox jumps again.\n".repeat(3);
    let line = &text[..78];
    let mut rng = common::Lcg(5);
    let noise = rng.bytes(64);
    let cases: [(&str, &[u8], Option<Method>, bool); 10] = [
        ("model", &text, Some(Method::Model), false), // a blend frame
        ("direct", line, Some(Method::Model), true),
        ("cm", &text, Some(Method::Cm), false),
        ("deep cm", &text, Some(Method::Cm), false),
        ("mid cm", &text, Some(Method::Cm), false),
        ("bwt", &text, Some(Method::Bwt), false),
        ("fast bwt", &text, Some(Method::Bwt), false),
        ("lzma", &text, Some(Method::Lzma), false),
        ("stored", &noise, Some(Method::Lzma), false),
        ("empty", b"", None, false),
    ];
    cases
        .iter()
        .map(|&(name, data, only, direct)| {
            let opts = Options {
                chunk_size: 4096,
                only,
                direct,
                // BWT frames are tried at levels 2 and 3, fast BWT frames at level 1, CM frames at
                // 4 and 5, mid ones at 6 (deep ones from 7)
                level: match name {
                    "bwt" => 2,
                    "fast bwt" => 1,
                    "cm" => 4,
                    "mid cm" => 6,
                    _ => Options::default().level,
                },
                ..Default::default()
            };
            let mut a = Vec::new();
            codec::compress(b, Input::Slice(data), &mut a, &opts).unwrap();
            let (_, s) = codec::list(&mut &a[..]).unwrap().remove(0);
            let ok = match name {
                "model" => s.blend_frames == 1,
                "direct" => s.direct_frames == 1,
                "cm" => s.cm_frames == 1,
                "deep cm" => s.deep_cm_frames == 1,
                "mid cm" => s.mid_cm_frames == 1,
                "bwt" => s.bwt_frames == 1 && s.fast_bwt_frames == 0,
                "fast bwt" => s.fast_bwt_frames == 1,
                "lzma" => s.lzma_frames == 1,
                "stored" => s.stored_frames == 1,
                _ => s.frames == 0,
            };
            assert!(ok, "{name}: the archive does not hold the frame kind it is for: {s:?}");
            (name, a, data.to_vec())
        })
        .collect()
}

#[test]
fn every_truncation_and_byte_change_is_rejected() {
    let b = backend();
    for (name, archive, data) in small_archives(&b) {
        let (out, r) = unpack(&b, &archive);
        assert!(r.is_ok() && out == data, "{name}: the archive itself must decode");
        let t = Instant::now();
        for len in 0..archive.len() {
            let (out, r) = unpack(&b, &archive[..len]);
            assert!(r.is_err(), "{name}: truncated to {len} bytes, it still decodes");
            assert!(
                data.starts_with(&out),
                "{name}: truncated to {len}, wrote bytes not in the original"
            );
        }
        // every other value of every byte, on both cores
        let positions: Vec<usize> = (0..archive.len()).collect();
        let accepted: usize = std::thread::scope(|s| {
            let workers: Vec<_> = positions
                .chunks(archive.len().div_ceil(2).max(1))
                .map(|part| {
                    let (b, archive, data) = (&b, &archive, &data);
                    s.spawn(move || {
                        let mut accepted = 0;
                        for &p in part {
                            for v in 0..=255u8 {
                                if v == archive[p] {
                                    continue;
                                }
                                let mut bad = archive.clone();
                                bad[p] = v;
                                let (out, r) = unpack(b, &bad);
                                assert!(
                                    data.starts_with(&out),
                                    "byte {p} = {v:#04x}: wrote bytes that are not in the original"
                                );
                                // a blend frame can spell the same bytes with other tokens (a token
                                // split in two, two others merged): a changed payload that decodes
                                // to exactly the original is another encoding of it, not damage
                                // that got through
                                let same = name == "model" && out == *data;
                                if r.is_ok() && !same {
                                    eprintln!("byte {p} = {v:#04x} is accepted");
                                    accepted += 1;
                                }
                            }
                        }
                        accepted
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        let changes = archive.len() * 255;
        println!(
            "{name}: {} bytes, {} truncations and {changes} byte changes, {accepted} accepted, {:.1} s",
            archive.len(),
            archive.len(),
            t.elapsed().as_secs_f64()
        );
        assert_eq!(
            accepted, 0,
            "{name}: {accepted} of {changes} byte changes decode without an error"
        );
    }
}

/// The same sweep over the golden archives (thousands of bytes): every single-bit flip of every
/// byte, and the bytes 0x00 and 0xFF (tens of minutes on two cores): run with `--ignored`.
#[test]
#[ignore]
fn golden_archives_reject_every_byte_change() {
    let b = backend();
    let dir = common::root().join("testdata/golden");
    for (file, content) in [
        ("sample.txt.nnz", "sample.txt"),
        ("sample.txt.direct.nnz", "sample.txt"),
        ("server.log.nnz", "server.log"),
    ] {
        let archive = std::fs::read(dir.join(file)).unwrap();
        let data = std::fs::read(dir.join(content)).unwrap();
        let t = Instant::now();
        let truncations = (0..archive.len())
            .filter(|&n| unpack(&b, &archive[..n]).1.is_err())
            .count();
        let positions: Vec<usize> = (0..archive.len()).collect();
        let accepted: usize = std::thread::scope(|s| {
            let workers: Vec<_> = positions
                .chunks(archive.len().div_ceil(2))
                .map(|part| {
                    let (b, archive, data) = (&b, &archive, &data);
                    s.spawn(move || {
                        let mut accepted = 0;
                        for &p in part {
                            let flips = (0..8).map(|k| archive[p] ^ (1 << k));
                            for v in flips.chain([0, 0xFF]).filter(|&v| v != archive[p]) {
                                let mut bad = archive.clone();
                                bad[p] = v;
                                let (out, r) = unpack(b, &bad);
                                assert!(data.starts_with(&out), "{p} = {v}: wrote bytes not in the original");
                                accepted += r.is_ok() as usize;
                            }
                        }
                        accepted
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        println!(
            "{file}: {} of {} truncations rejected, {accepted} byte changes accepted of about {}, {:.0} s",
            truncations,
            archive.len(),
            archive.len() * 10,
            t.elapsed().as_secs_f64()
        );
        assert_eq!(truncations, archive.len());
        assert_eq!(accepted, 0);
    }
}
