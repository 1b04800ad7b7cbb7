//! End-to-end round trips through the library with the tiny test model, the tokenizer's
//! losslessness, and independence of the archive bytes from thread count and batching.

mod common;
use common::Lcg;
use nnz::backend::cpu::CpuBackend;
use nnz::codec::{self, Input, Method, Options, Stats};

fn backend() -> CpuBackend {
    CpuBackend::new(common::tiny_model())
}

fn pack(b: &CpuBackend, data: &[u8], chunk: u32) -> Vec<u8> {
    pack_with(b, data, chunk, false)
}

/// With `direct`, only direct model frames (or storing): the tiny model loses to LZMA on most data,
/// and these tests are about the direct frames.
fn pack_with(b: &CpuBackend, data: &[u8], chunk: u32, direct: bool) -> Vec<u8> {
    pack_level(b, data, chunk, direct, 8, direct.then_some(Method::Model))
}

/// `data` compressed at `level` with 4 KiB chunks, by `only` one method if given.
fn pack_level(b: &CpuBackend, data: &[u8], chunk: u32, direct: bool, level: u8, only: Option<Method>) -> Vec<u8> {
    let mut out = Vec::new();
    let opts = Options {
        chunk_size: chunk,
        direct,
        level,
        only,
        ..Default::default()
    };
    codec::compress(b, Input::Slice(data), &mut out, &opts).unwrap();
    out
}

fn unpack(b: &CpuBackend, archive: &[u8]) -> nnz::Result<Vec<u8>> {
    let mut out = Vec::new();
    codec::decompress(b, &mut &archive[..], Some(&mut out), &Options::default())?;
    Ok(out)
}

fn sample_text() -> Vec<u8> {
    std::fs::read(common::root().join("testdata/golden/sample.txt")).unwrap()
}

#[test]
fn round_trips() {
    let b = backend();
    let mut rng = Lcg(3);
    let text = sample_text();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte", vec![b'x']),
        ("one NUL", vec![0]),
        ("all byte values", (0..=255u8).collect()),
        ("random binary", rng.bytes(20_000)),
        ("text", text.clone()),
        (
            "invalid utf-8",
            b"caf\xc3\xa9 \xc3\x28 \xff\xfe\x00\x80 tail".repeat(50),
        ),
        ("zeros", vec![0u8; 9000]),
    ];
    for (name, data) in &cases {
        for chunk in [1000, 4096, 1 << 16] {
            let a = pack(&b, data, chunk);
            assert_eq!(&unpack(&b, &a).unwrap(), data, "{name}, chunk {chunk}");
        }
    }
    // text shrinks with the tiny model; random data is stored with a small bounded overhead
    let a = pack(&b, &text, 1 << 16);
    assert!(a.len() < text.len() * 3 / 4, "text: {} -> {}", text.len(), a.len());
    let r = rng.bytes(200_000);
    let a = pack(&b, &r, 1 << 16);
    assert!(
        a.len() as f64 <= r.len() as f64 * 1.001 + 64.0,
        "random grew {} -> {}",
        r.len(),
        a.len()
    );
}

#[test]
fn bench_file_round_trip() {
    let Some(dir) = common::bench_dir() else {
        eprintln!("../shared/bench not found; skipping");
        return;
    };
    let b = backend();
    for f in ["canterbury/fields.c", "canterbury/grammar.lsp", "misc/fireworks.jpeg"] {
        let data = std::fs::read(dir.join(f)).unwrap();
        let a = pack(&b, &data, 1 << 16);
        assert_eq!(unpack(&b, &a).unwrap(), data, "{f}");
        assert!(
            a.len() as f64 <= data.len() as f64 * 1.001 + 64.0,
            "{f} grew past the stored bound"
        );
    }
}

#[test]
fn archive_bytes_do_not_depend_on_threads() {
    let b = backend();
    let mut data = sample_text();
    data.extend(Lcg(9).bytes(3000));
    data.extend(sample_text());
    let mut archives = Vec::new();
    for threads in [1, 2, 5] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        archives.push(pool.install(|| pack(&b, &data, 2048)));
    }
    assert!(
        archives.windows(2).all(|w| w[0] == w[1]),
        "archives differ between thread counts"
    );
    // a stream of unknown length (reader) gives the same bytes as a mapped slice
    let mut from_reader = Vec::new();
    let opts = Options {
        chunk_size: 2048,
        ..Default::default()
    };
    codec::compress(&b, Input::Reader(Box::new(&data[..])), &mut from_reader, &opts).unwrap();
    assert_eq!(from_reader, archives[0]);
}

/// `data` compressed with `opts` in a pool of `threads` threads.
fn compress_on_threads(b: &CpuBackend, data: &[u8], opts: &Options, threads: usize) -> Vec<u8> {
    compress_stats_on_threads(b, data, opts, threads).0
}

/// The archive and what `compress` said of it.
fn compress_stats_on_threads(b: &CpuBackend, data: &[u8], opts: &Options, threads: usize) -> (Vec<u8>, Stats) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let mut out = Vec::new();
    let stats = pool
        .install(|| codec::compress(b, Input::Slice(data), &mut out, opts))
        .unwrap();
    (out, stats)
}

/// A file of one chunk leaves a core idle: there its LZMA trial (and the model's) run beside the
/// byte mixer's. The frame chosen must be the one a single thread chooses, the LZMA frame included
/// where it wins (random bytes repeated once: LZMA codes the repeat in a few bytes, while the byte
/// mixer still learns to trust its match model; from three copies on, the byte mixer of format
/// 18 wins).
#[test]
fn a_lone_chunks_trials_side_by_side_choose_what_one_thread_does() {
    let b = backend();
    let block = Lcg(11).bytes(3000);
    let data: Vec<u8> = block.iter().cycle().take(2 * block.len()).copied().collect();
    for level in [5u8, 6, 8, 9] {
        let opts = Options {
            chunk_size: 1 << 16,
            level,
            ..Default::default()
        };
        let archives: Vec<_> = [1, 2].map(|t| compress_on_threads(&b, &data, &opts, t)).into();
        assert_eq!(archives[0], archives[1], "level {level}: one thread and two differ");
        assert_eq!(unpack(&b, &archives[1]).unwrap(), data, "level {level}");
        if level == 5 {
            let (_, stats) = codec::list(&mut &archives[1][..]).unwrap().remove(0);
            assert_eq!(stats.lzma_frames, 1, "level 5: {stats:?}");
        }
    }
}

#[test]
fn concatenated_archives_decode_to_concatenated_content() {
    let b = backend();
    let mut a = pack(&b, b"first part, ", 4096);
    a.extend(pack(&b, b"second part", 4096));
    assert_eq!(unpack(&b, &a).unwrap(), b"first part, second part");
}

#[test]
fn tokenizer_is_lossless_for_any_bytes() {
    let m = common::tiny_model();
    let mut rng = Lcg(5);
    let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|x| vec![x]).collect();
    inputs.push((0..=255u8).collect());
    inputs.push((0..=255u8).rev().collect());
    for n in [1, 2, 3, 17, 1000, 5000] {
        inputs.push(rng.bytes(n));
    }
    inputs.push(sample_text());
    for data in inputs {
        let ids = m.tokenizer.encode(&data).unwrap();
        let mut back = Vec::new();
        m.tokenizer.decode_into(&ids, &mut back).unwrap();
        assert_eq!(back, data);
    }
}

#[test]
fn damaged_archives_fail_cleanly() {
    let b = backend();
    let data = sample_text();
    // the default mode (model frames with context mixing) and --direct (direct model frames)
    let archives = [pack(&b, &data, 4096), pack_with(&b, &data, 4096, true)];
    let mut rng = Lcg(17);
    for i in 0..200 {
        let good = &archives[i % 2];
        let mut bad = good.clone();
        match i % 3 {
            0 => {
                let p = rng.next() as usize % bad.len();
                bad[p] ^= 1 << (rng.next() % 8);
            }
            1 => bad.truncate(rng.next() as usize % bad.len()),
            _ => {
                let p = rng.next() as usize % bad.len();
                bad[p] = rng.next() as u8;
            }
        }
        // either an error, or (if the change was a no-op) exactly the original
        if let Ok(out) = unpack(&b, &bad) {
            assert_eq!(out, data, "damage {i} decoded to different bytes without an error");
        }
    }
}

#[test]
fn older_versions_still_decode() {
    // version 1: made before the match model and mixer existed; version 2: the format-2 match
    // model and mixer (whole tokens, one table each); version 3: before direct frames; version 4:
    // before canonical payloads (every frame kind); version 5: the last with model frames (tokens
    // by the token mixer), before blend frames; version 6: before BWT frames; version 7: before
    // fast BWT frames; version 8: before the byte mixer looked for records; version 9: before deep
    // CM frames; version 10: deep CM frames before the long match model; version 11: deep CM
    // frames before the bi-level image model; version 12: CM and deep CM frames before format 13's
    // contexts; version 13: before mid CM frames (level 6 wrote deep CM frames); version 14: before
    // the run model of deep CM frames and format 15's blend frames; version 15: before the JPEG
    // model of deep CM frames; version 16: before the number model of deep and mid CM frames;
    // version 17: before the warm-up of mixers and maps in CM, mid, deep CM and blend frames;
    // version 18: blend frames before the adaptive output layer; version 19: deep and mid CM frames
    // before the URL model
    let b = backend();
    let golden = |name: &str| std::fs::read(common::root().join("testdata/golden").join(name)).unwrap();
    for version in [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19] {
        let old = golden(&format!("sample.txt.v{version}.nnz"));
        assert_eq!(old[4], version);
        assert_eq!(unpack(&b, &old).unwrap(), sample_text(), "version {version}");
    }
    for (archive, content, version) in [
        ("sample.txt.direct.v4.nnz", "sample.txt", 4),
        ("server.log.v4.nnz", "server.log", 4),
        ("sample.txt.direct.v5.nnz", "sample.txt", 5),
        ("server.log.v5.nnz", "server.log", 5),
        ("sample.txt.direct.v6.nnz", "sample.txt", 6),
        ("server.log.v6.nnz", "server.log", 6),
        ("sample.txt.direct.v7.nnz", "sample.txt", 7),
        ("server.log.v7.nnz", "server.log", 7),
        ("sample.txt.direct.v8.nnz", "sample.txt", 8),
        ("server.log.v8.nnz", "server.log", 8),
        ("rings.pbm.raw.v8.nnz", "rings.pbm.raw", 8),
        ("sample.txt.direct.v9.nnz", "sample.txt", 9),
        ("server.log.v9.nnz", "server.log", 9),
        ("rings.pbm.raw.v9.nnz", "rings.pbm.raw", 9),
        ("sample.txt.direct.v10.nnz", "sample.txt", 10),
        ("server.log.v10.nnz", "server.log", 10),
        ("rings.pbm.raw.v10.nnz", "rings.pbm.raw", 10),
        ("sample.txt.direct.v11.nnz", "sample.txt", 11),
        ("server.log.v11.nnz", "server.log", 11),
        ("rings.pbm.raw.v11.nnz", "rings.pbm.raw", 11),
        ("sample.txt.direct.v12.nnz", "sample.txt", 12),
        ("server.log.v12.nnz", "server.log", 12),
        ("rings.pbm.raw.v12.nnz", "rings.pbm.raw", 12),
        ("sample.txt.direct.v13.nnz", "sample.txt", 13),
        ("server.log.v13.nnz", "server.log", 13),
        ("rings.pbm.raw.v13.nnz", "rings.pbm.raw", 13),
        ("sample.txt.direct.v14.nnz", "sample.txt", 14),
        ("server.log.v14.nnz", "server.log", 14),
        ("rings.pbm.raw.v14.nnz", "rings.pbm.raw", 14),
        ("sample.txt.direct.v15.nnz", "sample.txt", 15),
        ("server.log.v15.nnz", "server.log", 15),
        ("rings.pbm.raw.v15.nnz", "rings.pbm.raw", 15),
        ("sample.txt.direct.v16.nnz", "sample.txt", 16),
        ("server.log.v16.nnz", "server.log", 16),
        ("rings.pbm.raw.v16.nnz", "rings.pbm.raw", 16),
        ("picture.jpg.v16.nnz", "picture.jpg", 16),
        ("sample.txt.direct.v17.nnz", "sample.txt", 17),
        ("server.log.v17.nnz", "server.log", 17),
        ("rings.pbm.raw.v17.nnz", "rings.pbm.raw", 17),
        ("picture.jpg.v17.nnz", "picture.jpg", 17),
        ("server.log.v19.nnz", "server.log", 19),
        ("rings.pbm.raw.v19.nnz", "rings.pbm.raw", 19),
        ("picture.jpg.v19.nnz", "picture.jpg", 19),
        ("links.txt.v19.nnz", "links.txt", 19),
        ("links.txt.mid.v19.nnz", "links.txt", 19),
    ] {
        let old = golden(archive);
        assert_eq!(old[4], version);
        assert_eq!(unpack(&b, &old).unwrap(), golden(content), "{archive}");
    }
    // the default level of versions 5 (model frames and CM frames) and 6 to 19 (blend frames and CM
    // or deep CM frames), sample.txt then server.log
    let mut mixed = sample_text();
    mixed.extend(golden("server.log"));
    for version in [5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19] {
        let old = golden(&format!("levels/mixed.L8.v{version}.nnz"));
        assert_eq!(old[4], version);
        let (_, stats) = codec::list(&mut &old[..]).unwrap().remove(0);
        let tokens = if version == 5 {
            stats.model_frames
        } else {
            stats.blend_frames
        };
        assert!(tokens > 0 && stats.cm_frames + stats.deep_cm_frames > 0, "{stats:?}");
        assert_eq!(unpack(&b, &old).unwrap(), mixed);
    }
    // one kind of CM frame only, as older versions wrote it: level 6 of versions 10 to 13 (deep CM
    // frames; 10: no long match model, 11: no image model, 12: format 12's contexts, 13: format
    // 13's), of versions 16, 17 and 19 (mid CM frames before the number model, before the
    // warm-up, and before the URL model), level 4 of versions 12 and 17 (plain CM frames with format 12's contexts and rates,
    // and format 13's before the warm-up)
    type FramesOf = fn(&codec::Stats) -> u64;
    let deep: FramesOf = |s| s.deep_cm_frames;
    let mid: FramesOf = |s| s.mid_cm_frames;
    let plain: FramesOf = |s| s.cm_frames;
    let only = [
        (6, 10, deep),
        (6, 11, deep),
        (6, 12, deep),
        (6, 13, deep),
        (6, 16, mid),
        (6, 17, mid),
        (6, 19, mid),
        (4, 12, plain),
        (4, 17, plain),
    ];
    for (level, version, frames) in only {
        let old = golden(&format!("levels/mixed.L{level}.v{version}.nnz"));
        assert_eq!(old[4], version);
        let (_, stats) = codec::list(&mut &old[..]).unwrap().remove(0);
        assert!(
            frames(&stats) == stats.frames && stats.frames > 0,
            "L{level} v{version}: {stats:?}"
        );
        assert_eq!(unpack(&b, &old).unwrap(), mixed);
    }
    // level 2 of version 7: BWT frames as version 7 wrote them
    let old = golden("levels/mixed.L2.v7.nnz");
    assert_eq!(old[4], 7);
    let (_, stats) = codec::list(&mut &old[..]).unwrap().remove(0);
    assert!(stats.bwt_frames > 0 && stats.fast_bwt_frames == 0, "{stats:?}");
    assert_eq!(unpack(&b, &old).unwrap(), mixed);
}

#[test]
fn golden_archives_are_stable() {
    // testdata/golden/*.nnz were made by this code with testdata/tiny.safetensors and 4 KiB chunks.
    // If the format or the arithmetic changes, this fails: bump the format version and keep old
    // archives decodable (or failing clearly), then regenerate (README, "Golden archives").
    let b = backend();
    // (the picture in chunks of 8 KiB: one chunk, with the JPEG's headers)
    for (name, want) in [
        ("sample.txt", "blend"),
        ("server.log", "deep cm"),
        ("rings.pbm.raw", "deep cm"),
        ("picture.jpg", "deep cm"),
        ("sample.txt", "direct"),
        ("links.txt", "deep cm"),
        ("links.txt", "mid cm"),
    ] {
        let chunk = if name.ends_with(".jpg") { 8192 } else { 4096 };
        let dir = common::root().join("testdata/golden");
        let data = std::fs::read(dir.join(name)).unwrap();
        let direct = want == "direct";
        let file = match want {
            "direct" => format!("{name}.direct.nnz"),
            "mid cm" => format!("{name}.mid.nnz"),
            _ => format!("{name}.nnz"),
        };
        let golden = std::fs::read(dir.join(&file)).unwrap();
        assert_eq!(golden[4], nnz::format::VERSION);
        let (_, stats) = codec::list(&mut &golden[..]).unwrap().remove(0);
        match want {
            "blend" => assert!(
                stats.blend_frames > 0,
                "{file}: the golden archive must exercise blend frames"
            ),
            "direct" => assert!(
                stats.direct_frames > 0,
                "{file}: the golden archive must exercise direct frames"
            ),
            "mid cm" => assert!(
                stats.mid_cm_frames > 0,
                "{file}: the golden archive must exercise mid CM frames"
            ),
            _ => assert!(
                stats.deep_cm_frames > 0,
                "{file}: the golden archive must exercise deep CM frames"
            ),
        }
        assert_eq!(unpack(&b, &golden).unwrap(), data, "{file}");
        // links.txt (URLs: the URL model of format 20) by the byte mixers alone: deep CM frames at
        // the default level, mid CM frames at level 6
        let packed = match (name, want) {
            ("links.txt", "mid cm") => pack_level(&b, &data, chunk, false, 6, Some(Method::Cm)),
            ("links.txt", _) => pack_level(&b, &data, chunk, false, 8, Some(Method::Cm)),
            _ => pack_with(&b, &data, chunk, direct),
        };
        assert_eq!(
            packed, golden,
            "compressing {name} no longer gives its golden archive {file}"
        );
    }
}

/// JPEG pictures (testdata/golden/picture.jpg, 4:2:0; testdata/jpeg: restart markers, grayscale,
/// 2x1 sampling, progressive): each decodes to itself, at levels with mid and deep CM frames;
/// damaged copies (bytes changed, cut short, markers inserted) decode to themselves too, or not at
/// all if the archive is damaged.
#[test]
fn jpeg_pictures_round_trip_whole_or_damaged() {
    let b = backend();
    let root = common::root();
    let mut files = vec![root.join("testdata/golden/picture.jpg")];
    for f in ["restarts.jpg", "gray.jpg", "h2v1.jpg", "progressive.jpg"] {
        files.push(root.join("testdata/jpeg").join(f));
    }
    let mut rng = Lcg(29);
    for path in &files {
        let data = std::fs::read(path).unwrap();
        let mut cases = vec![data.clone(), data[..data.len() * 2 / 3].to_vec()];
        for _ in 0..6 {
            let mut bad = data.clone();
            for _ in 0..3 {
                let at = 100 + (rng.next() as usize) % (bad.len() - 100);
                match rng.next() % 3 {
                    0 => bad[at] = rng.next() as u8,
                    1 => bad.insert(at, 0xFF),
                    _ => bad.splice(at..at, [0xFF, 0xD0 + (rng.next() % 8) as u8]).for_each(drop),
                }
            }
            cases.push(bad);
        }
        for (i, case) in cases.iter().enumerate() {
            // level 6: mid CM frames; 7: deep CM frames (and blend frames)
            let level = 6 + (i % 2) as u8;
            let opts = Options {
                chunk_size: 1 << 16,
                level,
                ..Default::default()
            };
            let mut a = Vec::new();
            codec::compress(&b, Input::Slice(case), &mut a, &opts).unwrap();
            assert_eq!(
                unpack(&b, &a).unwrap(),
                *case,
                "{} case {i}, level {level}",
                path.display()
            );
        }
    }
}

#[test]
fn cm_frames_win_on_logs_and_survive_damage() {
    let b = backend();
    let data = std::fs::read(common::root().join("testdata/golden/server.log")).unwrap();
    let data: Vec<u8> = data.iter().cycle().take(40_000).copied().collect();
    let a = pack(&b, &data, 1 << 16);
    let (_, stats) = codec::list(&mut &a[..]).unwrap().remove(0);
    assert_eq!(stats.deep_cm_frames, 1, "a log should be coded by context mixing");
    assert_eq!(unpack(&b, &a).unwrap(), data);
    for p in [40, 100, a.len() / 2, a.len() - 20] {
        let mut bad = a.clone();
        bad[p] ^= 0x04;
        if let Ok(out) = unpack(&b, &bad) {
            assert_eq!(out, data);
        }
    }
}

#[test]
fn lzma_frames_are_chosen_where_they_win() {
    let b = backend();
    let block = Lcg(21).bytes(3000);
    let data: Vec<u8> = block.iter().cycle().take(6000).copied().collect();
    // level 5: the plain byte mixer and LZMA 6, on random bytes repeated once (the byte mixer
    // codes more copies in fewer bytes than LZMA does)
    let opts = Options {
        chunk_size: 1 << 16,
        level: 5,
        ..Default::default()
    };
    let mut a = Vec::new();
    codec::compress(&b, Input::Slice(&data), &mut a, &opts).unwrap();
    let (_, stats) = codec::list(&mut &a[..]).unwrap().remove(0);
    assert_eq!(stats.lzma_frames, 1, "a repeated random block should be LZMA-coded");
    assert!(a.len() < 3200, "{} bytes", a.len());
    assert_eq!(unpack(&b, &a).unwrap(), data);
    // damage inside the LZMA payload is an error, never a panic or wrong output
    for p in [60, 200, a.len() - 30] {
        let mut bad = a.clone();
        bad[p] ^= 0x10;
        if let Ok(out) = unpack(&b, &bad) {
            assert_eq!(out, data);
        }
    }
}

#[test]
fn fast_bwt_frames_code_long_runs_below_eight_bits_a_byte_per_payload_byte() {
    // a fast BWT frame codes one run flag for a repeated byte: a MiB of zeros takes less payload
    // than 8 bits a byte allows under the work bound, and must still be written and decoded
    let b = backend();
    let data = vec![0u8; 1 << 20];
    let opts = Options {
        chunk_size: 1 << 20,
        level: 1,
        ..Default::default()
    };
    let mut a = Vec::new();
    let stats = codec::compress(&b, Input::Slice(&data), &mut a, &opts).unwrap();
    assert_eq!((stats.fast_bwt_frames, stats.frames), (1, 1), "{stats:?}");
    let bound = 8 * data.len() as u64 / nnz::format::MAX_SYMBOLS_PER_BYTE;
    assert!((a.len() as u64) < bound, "{} bytes", a.len());
    assert_eq!(unpack(&b, &a).unwrap(), data);
}

#[test]
fn direct_mode_codes_text_directly_and_round_trips() {
    let b = backend();
    let text = sample_text();
    let a = pack_with(&b, &text, 4096, true);
    let (_, stats) = codec::list(&mut &a[..]).unwrap().remove(0);
    assert!(stats.direct_frames > 0 && stats.cm_frames == 0, "{stats:?}");
    assert_eq!(unpack(&b, &a).unwrap(), text);
    // without the restriction to the model: random bytes are stored, a repeated block is LZMA-coded
    let opts = Options {
        chunk_size: 4096,
        direct: true,
        ..Default::default()
    };
    for (data, lzma) in [
        (Lcg(3).bytes(9000), false),
        (Lcg(4).bytes(500).repeat(20), true),
        (Vec::new(), false),
    ] {
        let mut a = Vec::new();
        let stats = codec::compress(&b, Input::Slice(&data), &mut a, &opts).unwrap();
        assert_eq!(stats.lzma_frames == stats.frames && stats.frames > 0, lzma, "{stats:?}");
        assert_eq!(unpack(&b, &a).unwrap(), data);
    }
}

/// A batch of one chunk runs the model's trial on a thread of its own beside the other trials
/// (when the pool has a second thread) and stops it where the byte mixer finds the chunk
/// redundant: the archive must be what one thread makes, for a chunk where the model is kept
/// (text) and one where it is stopped (a log below half a bit per byte), at every level that runs
/// it.
#[test]
fn a_lone_chunk_codes_the_same_with_its_model_trial_beside_the_others() {
    let b = backend();
    // server.log twice: its second copy costs next to nothing
    let log = std::fs::read(common::root().join("testdata/golden/server.log"))
        .unwrap()
        .repeat(2);
    for (data, redundant) in [(sample_text(), false), (log, true)] {
        for level in [7u8, 8, 9] {
            let opts = Options {
                chunk_size: 1 << 20,
                level,
                ..Default::default()
            };
            let archives: Vec<Vec<u8>> = [1, 2]
                .into_iter()
                .map(|threads| {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let mut out = Vec::new();
                    pool.install(|| codec::compress(&b, Input::Slice(&data), &mut out, &opts))
                        .unwrap();
                    out
                })
                .collect();
            assert_eq!(archives[0], archives[1], "level {level}: one thread and two differ");
            // the two regimes: below half a bit per byte the byte mixer's verdict stops the model
            assert_eq!(archives[0].len() * 16 < data.len(), redundant, "level {level}");
            assert_eq!(unpack(&b, &archives[1]).unwrap(), data, "level {level}");
        }
    }
}

/// At levels 7 and 8 the model's trial stops once it is clearly behind the byte mixer's
/// (`codec::pace`), waiting for the byte mixer's marks when it runs beside it. A table of numbers,
/// where the model (the tiny one) is 11% behind: the archive must be what one thread makes, and
/// what level 9, which runs the model's trial to the end, makes (the byte mixer's frame).
#[test]
fn a_model_trial_stopped_behind_the_byte_mixer_changes_nothing() {
    let b = backend();
    let mut rng = Lcg(7);
    let mut x = 100_000;
    let mut data = Vec::new();
    for i in 1..=3000 {
        x += rng.next() % 100;
        let verb = ["GET", "PUT", "POST"][(rng.next() % 3) as usize];
        data.extend(format!("{i},{x},{},{verb}\n", rng.next() % 1000).bytes());
    }
    let (archives, stopped): (Vec<Vec<u8>>, Vec<u64>) = [(8u8, 1), (8, 2), (7, 2), (9, 2)]
        .into_iter()
        .map(|(level, threads)| {
            let opts = Options {
                chunk_size: 1 << 20,
                level,
                ..Default::default()
            };
            let (out, stats) = compress_stats_on_threads(&b, &data, &opts, threads);
            (out, stats.model_trials_stopped)
        })
        .unzip();
    // `-v` says so: levels 7 and 8 stopped the model's trial, level 9 ran it to the end
    assert_eq!(stopped, [1, 1, 1, 0]);
    // not below half a bit per byte: the byte mixer's verdict does not stop the model's trial
    assert!(archives[0].len() * 16 > data.len(), "{} bytes", archives[0].len());
    assert_eq!(archives[0], archives[1], "one thread and two differ");
    let (_, stats) = codec::list(&mut &archives[0][..]).unwrap().remove(0);
    assert_eq!(stats.deep_cm_frames, 1, "{stats:?}");
    // level 7 (no LZMA trial) round-trips too; level 9 runs the model's trial to the end and
    // chooses the same frame
    assert_eq!(unpack(&b, &archives[2]).unwrap(), data);
    assert_eq!(archives[3], archives[0], "level 9 chose otherwise");
    assert_eq!(unpack(&b, &archives[0]).unwrap(), data);
}

#[test]
fn every_level_round_trips_keeps_its_golden_archive_and_ignores_threads() {
    // testdata/golden/levels/mixed.LN.nnz: sample.txt then server.log, level N, tiny model, 4 KiB
    // chunks (README, "Golden archives")
    let b = backend();
    let mut data = sample_text();
    data.extend(std::fs::read(common::root().join("testdata/golden/server.log")).unwrap());
    let mut sizes = Vec::new();
    for level in 1..=9u8 {
        let opts = Options {
            chunk_size: 4096,
            level,
            ..Default::default()
        };
        let archives: Vec<_> = [1, 3].map(|t| compress_on_threads(&b, &data, &opts, t)).into();
        assert_eq!(
            archives[0], archives[1],
            "level {level}: archives differ between thread counts"
        );
        let golden_path = common::root().join(format!("testdata/golden/levels/mixed.L{level}.nnz"));
        let golden = std::fs::read(&golden_path).unwrap();
        assert_eq!(
            archives[0],
            golden,
            "level {level} no longer gives {}",
            golden_path.display()
        );
        assert_eq!(unpack(&b, &golden).unwrap(), data, "level {level}");
        let (_, stats) = codec::list(&mut &golden[..]).unwrap().remove(0);
        // levels 1-3 are BWT frames (fast at level 1) and LZMA frames only, 4-6 never run the model,
        // 4 and 5 have the plain byte mixer, 6 the mid one, 7 on the deep one (at level 9 it wins
        // the log's chunks against blend frames since format 18)
        assert_eq!(
            stats.cm_frames + stats.deep_cm_frames + stats.mid_cm_frames + stats.blend_frames > 0,
            level >= 4,
            "level {level}: mixed frames"
        );
        assert_eq!(stats.cm_frames > 0, matches!(level, 4 | 5), "level {level}: CM frames");
        assert_eq!(stats.mid_cm_frames > 0, level == 6, "level {level}: mid CM frames");
        assert_eq!(stats.deep_cm_frames > 0, level >= 7, "level {level}: deep CM frames");
        assert_eq!(
            stats.bwt_frames > 0,
            matches!(level, 2 | 3),
            "level {level}: BWT frames"
        );
        assert_eq!(stats.fast_bwt_frames > 0, level == 1, "level {level}: fast BWT frames");
        if level == 1 {
            assert_eq!(stats.fast_bwt_frames + stats.stored_frames, stats.frames, "{stats:?}");
        }
        if level <= 6 {
            assert_eq!(stats.tokens, 0, "level {level} ran the model");
        }
        sizes.push(golden.len());
    }
    // each class's best level is no bigger than the best of the class below: sorted (3), the
    // byte mixer (5), then the mid byte mixer (6) and the deep one with the model (8), which try
    // different mixers (on chunks as small as these 4 KiB, the mid one's fewer inputs can win), and
    // 9 tries what 8 does and more
    assert!(
        sizes[0] >= sizes[2] && sizes[2] >= sizes[4] && sizes[4] >= sizes[5].max(sizes[7]) && sizes[7] >= sizes[8],
        "{sizes:?}"
    );
    // the default is level 8
    assert_eq!(
        pack(&b, &data, 4096),
        std::fs::read(common::root().join("testdata/golden/levels/mixed.L8.nnz")).unwrap()
    );
}

/// `--without model` at the default level is that level without the network: the same deep CM
/// and LZMA trials, no blend frame, nothing run through the model; `--without` any method leaves
/// it out.
#[test]
fn without_a_method_the_level_never_tries_it() {
    let b = backend();
    let mut data = sample_text();
    data.extend(std::fs::read(common::root().join("testdata/golden/server.log")).unwrap());
    let run = |without: Option<Method>| {
        let opts = Options {
            chunk_size: 4096,
            without,
            ..Default::default()
        };
        let a = compress_on_threads(&b, &data, &opts, 1);
        assert_eq!(unpack(&b, &a).unwrap(), data, "without {without:?}");
        codec::list(&mut &a[..]).unwrap().remove(0).1
    };
    let with = run(None);
    assert!(with.blend_frames > 0, "{with:?}");
    let no_net = run(Some(Method::Model));
    assert_eq!((no_net.blend_frames, no_net.tokens), (0, 0), "{no_net:?}");
    assert!(no_net.deep_cm_frames > 0, "{no_net:?}");
    let no_cm = run(Some(Method::Cm));
    assert_eq!(no_cm.deep_cm_frames, 0, "{no_cm:?}");
    assert!(no_cm.blend_frames > 0, "{no_cm:?}");
}

/// The progress callback moves while one chunk is coded, in both directions, never backwards,
/// and ends at the input's length (compressing) or the archive's (decompressing).
#[test]
fn progress_moves_within_a_chunk() {
    use std::sync::{Arc, Mutex};
    let b = backend();
    let mut rng = Lcg(11);
    let text = sample_text();
    // one chunk of 400 KB: the sample text with random bytes between its copies
    let mut data = Vec::new();
    while data.len() < 400_000 {
        data.extend_from_slice(&text);
        data.extend(rng.bytes(64));
    }
    data.truncate(400_000);
    let recorder = || {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let f = Box::new(move |n: u64| s.lock().unwrap().push(n)) as Box<dyn Fn(u64) + Sync>;
        (seen, f)
    };
    let check = |what: &str, seen: &[u64], total: u64| {
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "{what}: progress ran backwards: {seen:?}"
        );
        assert_eq!(seen.last(), Some(&total), "{what}: {seen:?}");
        let within = seen.iter().filter(|&&n| n > 0 && n < total).count();
        assert!(
            within >= 3,
            "{what}: the bar moved {within} times within the chunk: {seen:?}"
        );
    };
    for level in [1, 4] {
        let (seen, progress) = recorder();
        let opts = Options {
            chunk_size: 1 << 20,
            level,
            progress: Some(progress),
            ..Default::default()
        };
        let mut archive = Vec::new();
        codec::compress(&b, Input::Slice(&data), &mut archive, &opts).unwrap();
        check(
            &format!("level {level}, compressing"),
            &seen.lock().unwrap(),
            data.len() as u64,
        );
        let (seen, progress) = recorder();
        let opts = Options {
            progress: Some(progress),
            ..Default::default()
        };
        let mut out = Vec::new();
        codec::decompress(&b, &mut &archive[..], Some(&mut out), &opts).unwrap();
        assert!(out == data);
        check(
            &format!("level {level}, decompressing"),
            &seen.lock().unwrap(),
            archive.len() as u64,
        );
    }
}

/// A bi-level image, 96 bytes a row (testdata/golden/rings.pbm.raw): from format 9 the byte mixer
/// finds its rows and codes it smaller than format 8 did, and the format-8 archive (CM frames made
/// without records) still decodes as it was made.
#[test]
fn the_byte_mixer_finds_records() {
    let b = backend();
    let dir = common::root().join("testdata/golden");
    let data = std::fs::read(dir.join("rings.pbm.raw")).unwrap();
    let old = std::fs::read(dir.join("rings.pbm.raw.v8.nnz")).unwrap();
    let new = pack(&b, &data, 4096);
    assert_eq!(unpack(&b, &old).unwrap(), data);
    assert_eq!(unpack(&b, &new).unwrap(), data);
    let (_, stats) = codec::list(&mut &new[..]).unwrap().remove(0);
    assert_eq!(stats.deep_cm_frames, stats.frames, "{stats:?}");
    assert!(
        (new.len() as f64) < 0.95 * old.len() as f64,
        "format 9: {} bytes, format 8: {}",
        new.len(),
        old.len()
    );
}

#[test]
fn archives_of_the_built_in_model_decode() {
    // testdata/golden/builtin/: archives made with the models that shipped inside nnz as its
    // default, named by the first bytes of the model's id (README, "Golden archives"). Users'
    // archives of a former default must decode forever, so this stays when the default model
    // changes: the binary keeps that model too.
    let b = CpuBackend::built_in().unwrap();
    let dir = common::root().join("testdata/golden/builtin");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let (content, id) = name.strip_suffix(".nnz").unwrap().rsplit_once('.').unwrap();
        let archive = std::fs::read(&path).unwrap();
        let (_, stats) = codec::list(&mut &archive[..]).unwrap().remove(0);
        assert!(stats.blend_frames > 0, "{name}: the archive must exercise the model");
        assert!(
            nnz::model::hex(&archive[8..24]).starts_with(id),
            "{name}: not made by model {id}"
        );
        let want = std::fs::read(common::root().join("testdata/golden").join(content)).unwrap();
        assert_eq!(unpack(&b, &archive).unwrap(), want, "{name}");
        seen += 1;
    }
    assert!(seen > 0, "no archive in {}", dir.display());
}
