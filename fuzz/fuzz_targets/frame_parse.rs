//! The frame parser alone: whatever it accepts writes back to the same bytes and parses again to
//! the same frame.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nnz::format::{Frame, VERSION};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let version = 1 + data[0] % VERSION;
    let chunk = 1 + u16::from_le_bytes([data[1], data[2]]) as u32;
    let mut r = &data[3..];
    let before = r.len();
    if let Ok(frame) = Frame::read(&mut r, chunk, version) {
        let used = before - r.len();
        let mut again = Vec::new();
        frame.write(&mut again).unwrap();
        if version >= 2 {
            assert_eq!(&again[..], &data[3..3 + used], "a parsed frame writes back differently");
            assert_eq!(frame.encoded_len(version), used as u64);
        }
        if version >= 2 || !matches!(frame, Frame::End { .. }) {
            assert_eq!(Frame::read(&mut &again[..], chunk, version).unwrap(), frame);
        }
    }
});
