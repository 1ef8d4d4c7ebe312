//! The text of a stored or fresh answer, whatever API gave it: what the staleness job and
//! the error budget's labels compare. Knows the wire formats (through `deja-openai`); the
//! comparison itself is the engine's ([`deja_core::verify::answer`]).

use deja_core::Answer;
use deja_openai::anthropic::stream as anthropic_stream;
use deja_openai::responses::stream as responses_stream;
use deja_openai::WireError;
use serde_json::Value;

/// Which API an entry answered, told by its answer: an Anthropic `message` (or a stream of
/// Anthropic's events), a Responses API `response` (or a stream of its events), else
/// OpenAI chat completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Anthropic,
    Responses,
}

impl Api {
    pub fn of(answer: &Answer) -> Api {
        let field = |bytes: &[u8], name: &str| {
            serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|v| v.get(name).and_then(Value::as_str).map(str::to_string))
        };
        match answer {
            Answer::Body(b) => {
                if field(b, "type").as_deref() == Some("message") {
                    Api::Anthropic
                } else if field(b, "object").as_deref() == Some("response") {
                    Api::Responses
                } else {
                    Api::OpenAi
                }
            }
            Answer::Chunks(c) => match c.first().and_then(|first| field(first, "type")) {
                Some(t) if t == "message_start" => Api::Anthropic,
                Some(t) if t.starts_with("response.") => Api::Responses,
                _ => Api::OpenAi,
            },
        }
    }

    /// The token usage a non-streamed answer of this API reports.
    pub fn usage_from_body(self, body: &[u8]) -> deja_core::Usage {
        match self {
            Api::OpenAi => deja_openai::sse::usage_from_body(body),
            Api::Anthropic => anthropic_stream::usage_from_body(body),
            Api::Responses => responses_stream::usage_from_body(body),
        }
    }
}

/// The text of a `chat.completion` body: each choice's content (or refusal, or tool calls
/// as JSON), in choice order, one per line.
pub fn completion_text(body: &[u8]) -> Result<String, String> {
    choices_text(body, Value::to_string)
}

/// [`completion_text`] with each choice's text made by `tool_calls` when it calls tools.
fn choices_text(body: &[u8], tool_calls: impl Fn(&Value) -> String) -> Result<String, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_string())?;
    let mut choices: Vec<&Value> = v
        .get("choices")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .ok_or_else(|| "the answer has no choices".to_string())?;
    choices.sort_by_key(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0));
    let texts: Vec<String> = choices
        .iter()
        .map(|c| {
            let m = c.get("message").unwrap_or(&Value::Null);
            match (m.get("content"), m.get("refusal"), m.get("tool_calls")) {
                (Some(Value::String(s)), _, _) => s.clone(),
                (_, Some(Value::String(s)), _) => s.clone(),
                (_, _, Some(t)) if !t.is_null() => tool_calls(t),
                _ => String::new(),
            }
        })
        .collect();
    Ok(texts.join("\n"))
}

/// Tool calls as what they ask for: each call's function name and arguments (parsed when
/// they are JSON), without the call ids, which differ on every call.
fn canonical_tool_calls(calls: &Value) -> String {
    let Some(calls) = calls.as_array() else {
        return calls.to_string();
    };
    let canonical: Vec<Value> = calls
        .iter()
        .map(|c| {
            let f = c.get("function").unwrap_or(&Value::Null);
            let arguments = match f.get("arguments") {
                Some(Value::String(s)) => {
                    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                }
                Some(v) => v.clone(),
                None => Value::Null,
            };
            serde_json::json!({ "name": f.get("name"), "arguments": arguments })
        })
        .collect();
    Value::Array(canonical).to_string()
}

/// The text an answer says, for comparing it with another answer to the same request: the
/// content, or its tool calls as JSON without their ids (so two calls of one function with
/// the same arguments are the same answer). A stream is assembled first. `None` when the
/// answer cannot be read.
pub fn comparable_text(answer: &Answer) -> Option<String> {
    Api::of(answer).text(answer).ok()
}

impl Api {
    /// [`comparable_text`] of a stored answer of this API, or why it cannot be read.
    pub fn text(self, answer: &Answer) -> Result<String, WireError> {
        match answer {
            Answer::Body(b) => self.body_text(b),
            Answer::Chunks(c) => self.body_text(&match self {
                Api::OpenAi => deja_openai::sse::chunks_to_completion(c)?,
                Api::Anthropic => anthropic_stream::events_to_message(c)?,
                Api::Responses => responses_stream::events_to_response(c)?,
            }),
        }
    }

    /// [`comparable_text`] of a non-streamed answer of this API, or why it cannot be read.
    pub fn body_text(self, body: &[u8]) -> Result<String, WireError> {
        match self {
            Api::OpenAi => choices_text(body, canonical_tool_calls).map_err(WireError::new),
            Api::Anthropic => anthropic_stream::message_text(body),
            Api::Responses => responses_stream::response_text(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_told_by_the_answer() {
        let cases: &[(Answer, Api)] = &[
            (
                Answer::Body(br#"{"type":"message","content":[]}"#.to_vec()),
                Api::Anthropic,
            ),
            (
                Answer::Chunks(vec![
                    br#"{"type":"message_start","message":{}}"#.to_vec(),
                    br#"{"type":"message_stop"}"#.to_vec(),
                ]),
                Api::Anthropic,
            ),
            (
                Answer::Body(br#"{"object":"chat.completion","choices":[]}"#.to_vec()),
                Api::OpenAi,
            ),
            (
                Answer::Chunks(vec![br#"{"object":"chat.completion.chunk"}"#.to_vec()]),
                Api::OpenAi,
            ),
            (
                Answer::Body(br#"{"object":"response","status":"completed","output":[]}"#.to_vec()),
                Api::Responses,
            ),
            (
                Answer::Chunks(vec![
                    br#"{"type":"response.created","sequence_number":0,"response":{}}"#.to_vec(),
                ]),
                Api::Responses,
            ),
            (Answer::Body(b"not json".to_vec()), Api::OpenAi),
            (Answer::Chunks(Vec::new()), Api::OpenAi),
        ];
        for (answer, want) in cases {
            assert_eq!(Api::of(answer), *want, "{answer:?}");
        }
    }

    #[test]
    fn tool_calls_compare_without_their_ids() {
        let call = |id: &str, args: &str| {
            Answer::Body(
                serde_json::json!({"choices":[{"index":0,"message":{"content":null,"tool_calls":[
                    {"id": id, "type":"function","function":{"name":"get_weather","arguments": args}}
                ]}}]})
                .to_string()
                .into_bytes(),
            )
        };
        let a = comparable_text(&call("call_1", r#"{"city":"Paris","unit":"c"}"#)).unwrap();
        let b = comparable_text(&call("call_2", r#"{"unit": "c", "city": "Paris"}"#)).unwrap();
        let c = comparable_text(&call("call_3", r#"{"city":"Lyon","unit":"c"}"#)).unwrap();
        assert_eq!(
            deja_core::verify::answer::agree_without_embedding(&a, &b),
            Some(true)
        );
        assert_eq!(
            deja_core::verify::answer::agree_without_embedding(&a, &c),
            Some(false)
        );
        let text =
            Answer::Body(br#"{"choices":[{"index":0,"message":{"content":"Paris"}}]}"#.to_vec());
        assert_eq!(comparable_text(&text).as_deref(), Some("Paris"));
        assert_eq!(comparable_text(&Answer::Body(b"not json".to_vec())), None);
    }

    #[test]
    fn a_responses_answer_compares_by_its_output_either_shape() {
        let body = serde_json::json!({"object": "response", "status": "completed", "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "id": "msg_1", "role": "assistant",
             "content": [{"type": "output_text", "text": "Paris", "annotations": []}]}
        ]})
        .to_string()
        .into_bytes();
        let events = deja_openai::responses::stream::response_to_events(&body).unwrap();
        assert_eq!(
            comparable_text(&Answer::Body(body)).as_deref(),
            Some("Paris")
        );
        assert_eq!(
            comparable_text(&Answer::Chunks(events)).as_deref(),
            Some("Paris")
        );
    }
}
