#![allow(dead_code)]
use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tiny_model_path() -> PathBuf {
    root().join("testdata/tiny.safetensors")
}

pub fn tiny_model() -> nnz::model::Model {
    nnz::model::Model::from_bytes(&std::fs::read(tiny_model_path()).unwrap()).unwrap()
}

/// ../shared/bench, when this checkout has it beside it.
pub fn bench_dir() -> Option<PathBuf> {
    let p = root().join("../shared/bench");
    p.is_dir().then_some(p)
}

pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
