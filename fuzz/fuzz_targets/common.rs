//! What the targets share: the tiny test model, a CPU backend over it, and the memory limit every
//! decode runs under (the fuzzer's RSS limit is set above it in fuzz/run.sh).
use nnz::backend::cpu::CpuBackend;
use std::sync::OnceLock;

pub const MEMORY_LIMIT: u64 = 48 << 20;

pub fn backend() -> &'static CpuBackend {
    static B: OnceLock<CpuBackend> = OnceLock::new();
    B.get_or_init(|| {
        let bytes = include_bytes!("../../testdata/tiny.safetensors");
        CpuBackend::new(nnz::model::Model::from_bytes(bytes).expect("tiny model"))
    })
}

/// Decode `archive` completely under `MEMORY_LIMIT` (the program and model are counted at ~35 MiB,
/// so chunks up to some 16 KiB decode, larger ones are refused before any work); the result must
/// be an error or the content, never a panic.
#[allow(dead_code)]
pub fn decode(archive: &[u8]) -> nnz::Result<Vec<u8>> {
    decode_with(archive, Some(MEMORY_LIMIT))
}

/// Decode `archive` completely under `memory_limit` (`None`: none).
pub fn decode_with(archive: &[u8], memory_limit: Option<u64>) -> nnz::Result<Vec<u8>> {
    let opts = nnz::codec::Options {
        memory_limit,
        ..Default::default()
    };
    let mut out = Vec::new();
    nnz::codec::decompress(backend(), &mut &archive[..], Some(&mut out), &opts)?;
    Ok(out)
}
