#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// A completed response with a message (text with an annotation, and a refusal), a
/// function call, a reasoning summary and a built-in tool call.
fn response() -> Value {
    json!({
        "id": "resp_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "completed_at": 1_700_000_001,
        "status": "completed",
        "model": "gpt-4o-mini",
        "error": null,
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}]},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [
                {"type": "output_text", "text": "Rust is a language.", "annotations": [
                    {"type": "url_citation", "url": "https://rust-lang.org", "start_index": 0, "end_index": 4, "title": "Rust"}
                ], "logprobs": []},
                {"type": "refusal", "refusal": "No more."}
            ]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup", "arguments": "{\"q\":\"rust\"}", "status": "completed"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "rust"}}
        ],
        "usage": {"input_tokens": 7, "output_tokens": 11, "total_tokens": 18}
    })
}

fn body() -> Vec<u8> {
    serde_json::to_vec(&response()).unwrap()
}

fn parsed(events: &[Vec<u8>]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::from_slice(e).unwrap())
        .collect()
}

#[test]
fn a_response_becomes_events_numbered_in_order() {
    let events = response_to_events(&body()).unwrap();
    let values = parsed(&events);
    for (i, e) in values.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(i), "{e}");
    }
    let kinds: Vec<&str> = values.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"response.created"));
    assert_eq!(kinds[1], "response.in_progress");
    assert_eq!(kinds.last(), Some(&"response.completed"));
    for expected in [
        "response.reasoning_summary_text.delta",
        "response.output_text.delta",
        "response.output_text.annotation.added",
        "response.output_text.done",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
    ] {
        assert!(kinds.contains(&expected), "{expected} missing: {kinds:?}");
    }
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "response.output_item.added")
            .count(),
        4
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "response.output_item.done")
            .count(),
        4
    );
    // The first events carry the response in progress, without output or usage.
    assert_eq!(values[0]["response"]["status"], "in_progress");
    assert_eq!(values[0]["response"]["output"], json!([]));
    assert_eq!(values[0]["response"]["usage"], Value::Null);
    assert_eq!(values[0]["response"]["id"], "resp_1");
    // The deltas carry the whole text, at the item's position.
    let delta = values
        .iter()
        .find(|e| e["type"] == "response.output_text.delta")
        .unwrap();
    assert_eq!(delta["delta"], "Rust is a language.");
    assert_eq!(delta["item_id"], "msg_1");
    assert_eq!(delta["output_index"], 1);
    assert_eq!(delta["content_index"], 0);
    // The last event is the response as stored.
    assert_eq!(values.last().unwrap()["response"], response());
}

#[test]
fn a_converted_stream_converts_back_and_is_whole() {
    let events = response_to_events(&body()).unwrap();
    assert!(stream_completed(&events));
    let back: Value = serde_json::from_slice(&events_to_response(&events).unwrap()).unwrap();
    assert_eq!(back, response());
    assert_eq!(
        usage_from_events(&events),
        Usage {
            prompt_tokens: 7,
            completion_tokens: 11
        }
    );
}

#[test]
fn what_a_client_accumulates_from_the_deltas_is_the_stored_output() {
    // Rebuild each message's text and each call's arguments from the deltas, as an SDK's
    // stream accumulator does, and compare with the stored items.
    let events = parsed(&response_to_events(&body()).unwrap());
    let mut items: Vec<Value> = Vec::new();
    for e in &events {
        let at = e["output_index"].as_u64().map(|i| i as usize);
        match e["type"].as_str().unwrap() {
            "response.output_item.added" => items.push(e["item"].clone()),
            "response.content_part.added" => items[at.unwrap()]["content"]
                .as_array_mut()
                .unwrap()
                .push(e["part"].clone()),
            "response.output_text.delta" => {
                let part = &mut items[at.unwrap()]["content"]
                    [e["content_index"].as_u64().unwrap() as usize];
                let text = format!(
                    "{}{}",
                    part["text"].as_str().unwrap(),
                    e["delta"].as_str().unwrap()
                );
                part["text"] = json!(text);
            }
            "response.function_call_arguments.delta" => {
                let item = &mut items[at.unwrap()];
                let args = format!(
                    "{}{}",
                    item["arguments"].as_str().unwrap(),
                    e["delta"].as_str().unwrap()
                );
                item["arguments"] = json!(args);
            }
            "response.output_item.done" => assert_eq!(e["item"], response()["output"][at.unwrap()]),
            _ => {}
        }
    }
    assert_eq!(items[1]["content"][0]["text"], "Rust is a language.");
    assert_eq!(items[2]["arguments"], "{\"q\":\"rust\"}");
    assert_eq!(items[3], response()["output"][3]);
}

#[test]
fn only_completed_answers_are_whole() {
    assert!(body_completed(&body()));
    for (field, value) in [
        ("status", json!("incomplete")),
        ("status", json!("queued")),
        ("status", json!("in_progress")),
        ("error", json!({"code": "server_error", "message": "x"})),
        ("object", json!("chat.completion")),
        ("output", Value::Null),
    ] {
        let mut r = response();
        r[field] = value.clone();
        assert!(
            !body_completed(&serde_json::to_vec(&r).unwrap()),
            "{field}={value}"
        );
    }
    assert!(!body_completed(b"not json"));

    let events = response_to_events(&body()).unwrap();
    // Cut before the end, or ended by a failure: not whole.
    assert!(!stream_completed(&events[..events.len() - 1]));
    assert!(!stream_completed(&[]));
    let mut failed = events.clone();
    *failed.last_mut().unwrap() = serde_json::to_vec(
        &json!({"type": "response.failed", "sequence_number": 99, "response": response()}),
    )
    .unwrap();
    assert!(!stream_completed(&failed));
    assert!(events_to_response(&failed).is_err());
    let mut incomplete_inside = events.clone();
    let mut r = response();
    r["status"] = json!("incomplete");
    *incomplete_inside.last_mut().unwrap() = serde_json::to_vec(
        &json!({"type": "response.completed", "sequence_number": 99, "response": r}),
    )
    .unwrap();
    assert!(!stream_completed(&incomplete_inside));
}

#[test]
fn stream_ends_are_recognised() {
    for end in [
        "response.completed",
        "response.failed",
        "response.incomplete",
        "error",
    ] {
        let data = serde_json::to_vec(&json!({"type": end, "sequence_number": 3})).unwrap();
        assert!(is_stream_end(&data), "{end}");
    }
    for not_end in [
        json!({"type": "response.output_text.delta", "delta": "response.completed"}),
        json!({"type": "response.created"}),
    ] {
        assert!(
            !is_stream_end(&serde_json::to_vec(&not_end).unwrap()),
            "{not_end}"
        );
    }
    assert!(!is_stream_end(b"response.completed but not json"));
}

#[test]
fn replayed_events_are_named() {
    let events = response_to_events(&body()).unwrap();
    let wire = String::from_utf8(crate::sse::encode_named_events(&events).to_vec()).unwrap();
    assert!(
        wire.starts_with("event: response.created\ndata: {"),
        "{wire}"
    );
    assert!(wire.contains("\n\nevent: response.completed\ndata: {"));
    assert!(!wire.contains("[DONE]"));
}

#[test]
fn the_text_of_an_answer_leaves_out_ids_and_reasoning() {
    let text = response_text(&body()).unwrap();
    assert!(text.contains("Rust is a language.No more."), "{text}");
    assert!(text.contains(r#""name":"lookup""#), "{text}");
    assert!(text.contains(r#""q":"rust""#), "{text}");
    assert!(!text.contains("thinking"), "{text}");
    assert!(
        !text.contains("fc_1") && !text.contains("call_1") && !text.contains("ws_1"),
        "{text}"
    );
    assert!(response_text(b"{}").is_err());
    assert_eq!(
        usage_from_body(&body()),
        Usage {
            prompt_tokens: 7,
            completion_tokens: 11
        }
    );
    assert_eq!(usage_from_body(b"nope"), Usage::default());
}

#[test]
fn what_is_not_a_response_is_refused() {
    assert!(response_to_events(b"{\"object\":\"chat.completion\"}").is_err());
    assert!(response_to_events(b"{\"object\":\"response\"}").is_err());
    assert!(response_to_events(b"[]").is_err());
    // Odd items and parts are carried whole, not dropped and not a panic.
    let odd = json!({"object": "response", "status": "completed", "output": [
        3,
        {"type": "message", "id": "m", "content": [7, {"type": "output_audio", "data": "x"}]}
    ]});
    let events = response_to_events(&serde_json::to_vec(&odd).unwrap()).unwrap();
    let back: Value = serde_json::from_slice(&events_to_response(&events).unwrap()).unwrap();
    assert_eq!(back, odd);
}
