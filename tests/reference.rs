//! The Rust CPU backend against the independent Python integer reference (train/intref.py):
//! identical frequency tables, bit for bit, for every position of every reference sequence,
//! including sequences longer than the model's window and random token ids.

mod common;
use nnz::backend::cpu::CpuBackend;
use nnz::backend::Backend;
use sha2::{Digest, Sha256};

struct RefSeq {
    tokens: Vec<u32>,
    first_table: Vec<u32>,
    hashes: Vec<[u8; 8]>,
}

fn load_ref(bytes: &[u8]) -> (usize, Vec<RefSeq>) {
    assert_eq!(&bytes[..8], b"NNZREF01", "reference file magic/version");
    let mut pos = 8;
    let u32_at = |p: &mut usize| {
        let v = u32::from_le_bytes(bytes[*p..*p + 4].try_into().unwrap());
        *p += 4;
        v
    };
    let vocab = u32_at(&mut pos) as usize;
    let n = u32_at(&mut pos);
    let mut seqs = Vec::new();
    for _ in 0..n {
        let len = u32_at(&mut pos) as usize;
        let tokens = (0..len).map(|_| u32_at(&mut pos)).collect();
        let first_table = (0..vocab).map(|_| u32_at(&mut pos)).collect();
        let hashes = (0..len)
            .map(|i| bytes[pos + 8 * i..pos + 8 * i + 8].try_into().unwrap())
            .collect();
        pos += 8 * len;
        seqs.push(RefSeq {
            tokens,
            first_table,
            hashes,
        });
    }
    assert_eq!(pos, bytes.len());
    (vocab, seqs)
}

fn tables_for(backend: &CpuBackend, tokens: &[u32], block: usize) -> Vec<Vec<u32>> {
    let v = backend.model().cfg.vocab;
    let bos = backend.model().cfg.bos();
    let inputs: Vec<u32> = std::iter::once(bos)
        .chain(tokens[..tokens.len() - 1].iter().copied())
        .collect();
    let mut s = backend.stream();
    let mut out = Vec::new();
    let mut buf = vec![0u32; block * v];
    for c in inputs.chunks(block) {
        s.feed(c, &mut buf[..c.len() * v]).unwrap();
        out.extend(buf[..c.len() * v].chunks(v).map(|t| t.to_vec()));
    }
    out
}

#[test]
fn cpu_backend_matches_python_reference() {
    check_against(CpuBackend::new(common::tiny_model()), "testdata/tiny.ref");
}

#[test]
fn shipped_model_matches_python_reference() {
    check_against(
        CpuBackend::new(nnz::model::Model::default_model().unwrap()),
        "testdata/default.ref",
    );
}

fn check_against(backend: CpuBackend, reference: &str) {
    let (vocab, seqs) = load_ref(&std::fs::read(common::root().join(reference)).unwrap());
    assert_eq!(vocab, backend.model().cfg.vocab);
    assert!(
        seqs.iter().any(|s| s.tokens.len() > backend.model().cfg.window),
        "a sequence must exceed the window"
    );
    for (k, seq) in seqs.iter().enumerate() {
        // any block size must give the same tables: 1 (decoder), 7 (odd), 64 (encoder)
        for block in [1, 7, 64] {
            let tables = tables_for(&backend, &seq.tokens, block);
            assert_eq!(
                tables[0], seq.first_table,
                "sequence {k}: first table differs (block {block})"
            );
            for (i, t) in tables.iter().enumerate() {
                let bytes: Vec<u8> = t.iter().flat_map(|x| x.to_le_bytes()).collect();
                let h: [u8; 8] = Sha256::digest(&bytes)[..8].try_into().unwrap();
                assert_eq!(
                    h, seq.hashes[i],
                    "sequence {k}, position {i}: table differs from the Python reference (block {block})"
                );
            }
        }
    }
}

#[test]
fn tables_are_valid_distributions() {
    let backend = CpuBackend::new(common::tiny_model());
    let v = backend.model().cfg.vocab;
    let toks: Vec<u32> = (0..150u32).map(|i| (i * 37) % (v as u32 - 1)).collect();
    for t in tables_for(&backend, &toks, 64) {
        assert!(t.iter().all(|&f| f >= 1));
        let total: u64 = t.iter().map(|&f| f as u64).sum();
        assert!(total <= 1 << 24 && total > (1 << 24) - 2 * v as u64, "total {total}");
    }
}
