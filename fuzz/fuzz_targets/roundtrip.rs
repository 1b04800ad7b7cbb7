//! Arbitrary input compressed and decompressed: the same bytes come back. The first byte picks the
//! chunk size and which methods may be used.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnz::codec::{Input, Method, Options};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let opts = Options {
        chunk_size: [64, 700, 4096, 1 << 16][(pick & 3) as usize],
        only: [None, Some(Method::Model), Some(Method::Cm), Some(Method::Lzma)][((pick >> 2) & 3) as usize],
        direct: pick & 16 != 0,
        ..Default::default()
    };
    let mut archive = Vec::new();
    nnz::codec::compress(common::backend(), Input::Slice(input), &mut archive, &opts).unwrap();
    // decoded as it was made: without a memory limit (a 64 KiB chunk needs more than the targets'
    // limit for hostile input)
    let back = common::decode_with(&archive, None).expect("an archive nnz made must decode");
    assert!(back == input, "the round trip changed the data");
});
