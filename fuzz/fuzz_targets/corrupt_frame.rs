//! Frames after a valid header (the tiny model's id, so the decoder gets past it): the first byte
//! picks the format version (1 to 5), the next two the chunk size (up to 4 KiB, so that each run
//! is quick), the rest is the frames.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnz::backend::Backend;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let header = nnz::format::Header {
        version: 1 + data[0] % nnz::format::VERSION,
        model_id: common::backend().model().id,
        chunk_size: 1 + u16::from_le_bytes([data[1], data[2]]) as u32 % 4096,
    };
    let mut archive = header.to_bytes().to_vec();
    archive.extend_from_slice(&data[3..]);
    let _ = common::decode(&archive);
});
