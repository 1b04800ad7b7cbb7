//! Arbitrary bytes as an archive: an error or content, never a panic, a hang or too much memory.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let _ = common::decode(data);
    let _ = nnz::codec::list(&mut &data[..]);
});
