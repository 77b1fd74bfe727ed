//! `SseFramer::push` on arbitrary bytes in arbitrary chunks. The first byte sets the bound on
//! a held-back event (16..=4096 bytes), the second seeds the chunk lengths; the rest is the
//! stream. What the framer releases must be a prefix of the input, byte for byte, and once the
//! stream ends it must have released everything unless it reports a partial event.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portcullis_openai::{SseFramer, StreamEnd};

fuzz_target!(|data: &[u8]| {
    let [bound, seed, stream @ ..] = data else {
        return;
    };
    let mut framer = SseFramer::new(16 + usize::from(*bound) * 16);
    let mut released = Vec::new();
    let mut state = u32::from(*seed) | 1;
    let mut start = 0;
    while start < stream.len() {
        // A small LCG for chunk lengths 0..=63: the same input always cuts the same way.
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let end = (start + (state >> 16) as usize % 64).min(stream.len());
        match framer.push(Bytes::copy_from_slice(&stream[start..end])) {
            Ok(out) => released.extend_from_slice(&out),
            Err(_) => return, // an oversized event: the gateway ends the stream here
        }
        assert!(
            stream.starts_with(&released),
            "released bytes are not a prefix of the input"
        );
        start = end;
    }
    if framer.end() != StreamEnd::PartialEvent {
        assert_eq!(
            released, stream,
            "a stream without a partial event was not released whole"
        );
    }
});
