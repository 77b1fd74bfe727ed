//! `SseFramer::push` over a streamed chat completion of 50 `chat.completion.chunk` events and
//! `data: [DONE]`, fed three ways: one chunk per event (the common case: nothing is held back
//! and nothing copied), the whole stream in one chunk, and 64-byte chunks that cut events
//! (every push copies into the held-back buffer).
//!
//! ```sh
//! cargo bench -p portcullis-openai --bench sse -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_openai::{SseFramer, StreamEnd};

/// The events of one streamed answer, each ending in a blank line.
fn events() -> Vec<String> {
    let words = [
        "The",
        " quarterly",
        " report",
        " is",
        " ready",
        ",",
        " and",
        " the",
        " team",
        " will",
    ];
    let mut out: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\
                 \"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\
                 \"delta\":{{\"content\":\"{}\"}},\"finish_reason\":null}}]}}\n\n",
                words[i % words.len()]
            )
        })
        .collect();
    out.push("data: [DONE]\n\n".to_owned());
    out
}

/// Feeds every chunk to a fresh framer; returns the bytes released and how the stream ended.
fn run(chunks: &[Bytes]) -> (usize, StreamEnd) {
    let mut framer = SseFramer::new(64 * 1024);
    let mut released = 0;
    for chunk in chunks {
        match framer.push(black_box(chunk.clone())) {
            Ok(bytes) => released += bytes.len(),
            Err(overflow) => panic!("a 50-event stream overflowed: {overflow:?}"),
        }
    }
    (released, framer.end())
}

fn bench_sse(c: &mut Criterion) {
    let events = events();
    let whole: String = events.concat();
    let per_event: Vec<Bytes> = events.into_iter().map(Bytes::from).collect();
    let one_chunk = vec![Bytes::from(whole.clone())];
    let cut: Vec<Bytes> = whole
        .as_bytes()
        .chunks(64)
        .map(Bytes::copy_from_slice)
        .collect();
    // A framer that lost or mangled bytes would make the figures meaningless.
    for chunks in [&per_event, &one_chunk, &cut] {
        assert_eq!(run(chunks), (whole.len(), StreamEnd::Done));
    }

    let mut group = c.benchmark_group("sse_framer");
    group.throughput(Throughput::Bytes(whole.len() as u64));
    group.bench_function("50_events/chunk_per_event", |b| b.iter(|| run(&per_event)));
    group.bench_function("50_events/one_chunk", |b| b.iter(|| run(&one_chunk)));
    group.bench_function("50_events/64B_chunks", |b| b.iter(|| run(&cut)));
    group.finish();
}

criterion_group!(benches, bench_sse);
criterion_main!(benches);
