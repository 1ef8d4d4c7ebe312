//! The SSE parser, for both wire formats (OpenAI's `data:`-only chunks and Anthropic's
//! named events). The input is the byte stream an upstream sent.
//!
//! - The events do not depend on how the stream is cut into reads: fed whole, one byte at
//!   a time, and in pieces whose sizes come from the input (empty pieces included), the
//!   parser gives the same events and the same end state.
//! - The events survive re-encoding: encoding them again (OpenAI's encoder, and
//!   Anthropic's, which adds `event:` lines) and parsing that gives them back.
//! - The functions the server runs on a recording (`stream_completed`,
//!   `chunks_to_completion`, `usage_from_chunks`, `replay_chunks`, and Anthropic's
//!   `stream_completed`, `events_to_message`, `usage_from_events`) and on what they
//!   return do not panic.
#![no_main]

use deja_core::Usage;
use deja_openai::anthropic::stream as anthropic;
use deja_openai::sse::{self, SseEvent, SseParser, DONE_EVENT};
use libfuzzer_sys::fuzz_target;

fn parse_in(pieces: &mut dyn Iterator<Item = &[u8]>) -> (Vec<SseEvent>, bool) {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for piece in pieces {
        events.extend(parser.push(piece));
    }
    (events, parser.finish())
}

/// Piece sizes from a small PRNG seeded with the input, so the fuzzer steers them.
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let mut seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Mostly short pieces (splits inside `\r\n`, the BOM and field names), some empty.
        let n = ((seed >> 33) % 9) as usize;
        let n = n.min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn encode(events: &[SseEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        match e {
            SseEvent::Data(d) => out.extend_from_slice(&sse::encode_event(d)),
            SseEvent::Done => out.extend_from_slice(DONE_EVENT),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = parse_in(&mut std::iter::once(data));
    assert_eq!(parse_in(&mut data.chunks(1)), whole, "fed byte by byte");
    assert_eq!(
        parse_in(&mut pieces(data).into_iter()),
        whole,
        "fed in pieces"
    );
    let (events, _) = whole;

    // Re-encoded events parse back to themselves.
    let (again, clean_end) = parse_in(&mut std::iter::once(&encode(&events)[..]));
    assert_eq!(again, events);
    assert!(clean_end);

    // What the server records: the data payloads before `[DONE]`.
    let chunks: Vec<Vec<u8>> = events
        .iter()
        .map_while(|e| match e {
            SseEvent::Data(d) => Some(d.clone()),
            SseEvent::Done => None,
        })
        .collect();
    let mut recorded: Vec<SseEvent> = chunks.iter().cloned().map(SseEvent::Data).collect();
    recorded.push(SseEvent::Done);
    let (replayed, _) = parse_in(&mut std::iter::once(&sse::encode_chunks(&chunks)[..]));
    assert_eq!(replayed, recorded);

    // OpenAI's format.
    let _ = sse::stream_completed(&chunks);
    let _ = sse::usage_from_chunks(&chunks);
    for include_usage in [false, true] {
        let _ = sse::replay_chunks(&chunks, include_usage, Usage::default());
    }
    if let Ok(body) = sse::chunks_to_completion(&chunks) {
        let _ = sse::usage_from_body(&body);
        if let Ok(back) = sse::completion_to_chunks(&body, true) {
            let _ = sse::stream_completed(&back);
            let _ = sse::chunks_to_completion(&back);
        }
    }

    // Anthropic's format: the same parser; `event:` lines are dropped, `type` repeats them.
    let _ = anthropic::stream_completed(&chunks);
    let _ = anthropic::usage_from_events(&chunks);
    for c in &chunks {
        let _ = anthropic::is_stream_end(c);
    }
    let encoded = anthropic::encode_events(&chunks);
    let (named, _) = parse_in(&mut std::iter::once(&encoded[..]));
    let plain: Vec<SseEvent> = chunks.iter().cloned().map(SseEvent::Data).collect();
    assert_eq!(named, plain, "Anthropic's encoding parses back");
    if let Ok(message) = anthropic::events_to_message(&chunks) {
        let _ = anthropic::usage_from_body(&message);
        let _ = anthropic::message_text(&message);
        if let Ok(back) = anthropic::message_to_events(&message) {
            let _ = anthropic::stream_completed(&back);
            let _ = anthropic::events_to_message(&back);
        }
    }
});
