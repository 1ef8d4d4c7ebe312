//! The mock's `POST /v1/responses` (OpenAI's Responses API), counted as `responses_calls`.
//!
//! The question is the text of the last user message of `input` (a string `input` is that
//! message; `input_text` parts are joined with a space), and the answer is the chat
//! answer to it ([`MockState::set_answer`] applies; questions are listed with the chat
//! ones), as one `message` output item with one `output_text` part. A streamed answer is
//! the events OpenAI sends: `response.created`, `response.in_progress`, the item and part
//! `added` events, the text word by word as `response.output_text.delta`, the `done`
//! events and `response.completed`, each numbered with `sequence_number`; `cut=N` drops the
//! connection after N events. `background: true` is answered with a queued response (no
//! output), as the API answers it. Faults work as for chat completions. Usage counts
//! whitespace-separated words of the input (`instructions` included) and of the answer.

use super::*;

/// The text of a message's content: a string, or its `input_text` parts joined with a
/// space.
fn input_text(content: &Value) -> String {
    parts_text(content, "input_text")
}

/// Every input message's text, and the last user message's.
fn input_texts(input: Option<&Value>) -> (Vec<String>, String) {
    match input {
        Some(Value::String(s)) => (vec![s.clone()], s.clone()),
        Some(Value::Array(items)) => {
            let texts = items
                .iter()
                .filter_map(|i| i.get("content"))
                .map(input_text)
                .collect();
            let question = items
                .iter()
                .rev()
                .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|i| i.get("content"))
                .map(input_text)
                .unwrap_or_default();
            (texts, question)
        }
        _ => (Vec::new(), String::new()),
    }
}

pub(super) async fn responses(
    State(state): State<MockState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ordinal = state.record(CallKind::Responses, &headers);
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        _ => return invalid_request("request body is not a JSON object"),
    };
    let (texts, question) = input_texts(request.get("input"));
    state.inner.questions.lock().push(question.clone());
    let faults = match Faults::collect(&headers, [question.as_str()]) {
        Ok(faults) => faults,
        Err(message) => return invalid_request(&message),
    };
    if let Some(fail) = faults.fail {
        sleep_ms(faults.slow_ms).await;
        return fail.response();
    }
    let answer = match state.inner.answers.lock().get(&question) {
        Some(a) => a.clone(),
        None => format!("deja-mock answer to: {question}"),
    };
    let input_tokens: u64 = texts.iter().map(|t| word_count(t)).sum::<u64>()
        + request
            .get("instructions")
            .and_then(Value::as_str)
            .map_or(0, word_count);
    let output_tokens = word_count(&answer);
    let plan = Plan {
        id: format!("resp_mock_{ordinal}"),
        item_id: format!("msg_mock_{ordinal}"),
        request: &request,
        answer: &answer,
        usage: json!({
            "input_tokens": input_tokens,
            "input_tokens_details": { "cached_tokens": 0 },
            "output_tokens": output_tokens,
            "output_tokens_details": { "reasoning_tokens": 0 },
            "total_tokens": input_tokens + output_tokens,
        }),
    };

    if request.get("background").and_then(Value::as_bool) == Some(true) {
        sleep_ms(faults.slow_ms).await;
        return Json(plan.response("queued", json!([]), Value::Null)).into_response();
    }
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        return stream_response(plan.events(), &faults);
    }
    sleep_ms(faults.slow_ms).await;
    let body = plan.completed();
    if faults.cut_after.is_some() {
        return truncated_json(&body);
    }
    Json(body).into_response()
}

/// What one answer is made of.
struct Plan<'a> {
    id: String,
    item_id: String,
    request: &'a Value,
    answer: &'a str,
    usage: Value,
}

impl Plan<'_> {
    /// The response object, with the request's parameters echoed as the API does.
    fn response(&self, status: &str, output: Value, usage: Value) -> Value {
        let r = self.request;
        let field = |name: &str, default: Value| r.get(name).cloned().unwrap_or(default);
        json!({
            "id": self.id,
            "object": "response",
            "created_at": MOCK_CREATED,
            "status": status,
            "background": field("background", json!(false)),
            "error": null,
            "incomplete_details": null,
            "instructions": field("instructions", Value::Null),
            "max_output_tokens": field("max_output_tokens", Value::Null),
            "model": field("model", json!("deja-mock-chat")),
            "output": output,
            "parallel_tool_calls": field("parallel_tool_calls", json!(true)),
            "previous_response_id": field("previous_response_id", Value::Null),
            "reasoning": { "effort": null, "summary": null },
            "store": field("store", json!(true)),
            "temperature": field("temperature", json!(1.0)),
            "text": field("text", json!({ "format": { "type": "text" } })),
            "tool_choice": field("tool_choice", json!("auto")),
            "tools": field("tools", json!([])),
            "top_p": field("top_p", json!(1.0)),
            "truncation": field("truncation", json!("disabled")),
            "usage": usage,
            "metadata": field("metadata", json!({})),
        })
    }

    fn message(&self, status: &str, content: Value) -> Value {
        json!({
            "id": self.item_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        })
    }

    fn part(text: &str) -> Value {
        json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
    }

    fn completed(&self) -> Value {
        let output = json!([self.message("completed", json!([Self::part(self.answer)]))]);
        self.response("completed", output, self.usage.clone())
    }

    /// The events of a streamed answer, split where a cut may happen: the text deltas are
    /// the body, everything from `response.output_text.done` on is the tail.
    fn events(&self) -> StreamEvents {
        let mut seq = 0u64;
        let mut event = |kind: &str, mut data: Value| {
            data["type"] = json!(kind);
            data["sequence_number"] = json!(seq);
            seq += 1;
            Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
        };
        let at = |extra: Value| {
            let mut v = json!({ "item_id": self.item_id, "output_index": 0, "content_index": 0 });
            if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
                v.extend(extra);
            }
            v
        };
        let started = self.response("in_progress", json!([]), Value::Null);
        let mut body = vec![
            event("response.created", json!({ "response": started })),
            event("response.in_progress", json!({ "response": started })),
            event(
                "response.output_item.added",
                json!({ "output_index": 0, "item": self.message("in_progress", json!([])) }),
            ),
            event(
                "response.content_part.added",
                at(json!({ "part": Self::part("") })),
            ),
        ];
        for piece in self.answer.split_inclusive(' ') {
            body.push(event(
                "response.output_text.delta",
                at(json!({ "delta": piece, "logprobs": [] })),
            ));
        }
        let part = Self::part(self.answer);
        let tail = vec![
            event(
                "response.output_text.done",
                at(json!({ "text": self.answer, "logprobs": [] })),
            ),
            event("response.content_part.done", at(json!({ "part": part }))),
            event(
                "response.output_item.done",
                json!({ "output_index": 0, "item": self.message("completed", json!([part])) }),
            ),
            event(
                "response.completed",
                json!({ "response": self.completed() }),
            ),
        ];
        StreamEvents { body, tail }
    }
}
