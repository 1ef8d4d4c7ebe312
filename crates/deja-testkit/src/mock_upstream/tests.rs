use super::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::ServiceExt;

/// What a client saw: the head, every body frame as it arrived, and how the body ended.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    frames: Vec<Bytes>,
    /// Set when the body ended in an error (a cut connection) instead of a clean end.
    error: Option<String>,
}

impl Reply {
    fn body(&self) -> Vec<u8> {
        self.frames.concat()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body()).expect("body is JSON")
    }

    /// The `data:` payloads of an SSE body, in order.
    fn sse_data(&self) -> Vec<String> {
        String::from_utf8(self.body())
            .unwrap()
            .split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| event.strip_prefix("data: ").expect("data event").to_owned())
            .collect()
    }

    fn sse_json(&self) -> Vec<Value> {
        self.sse_data()
            .iter()
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}

/// Sends one HTTP/1.1 request over a fresh connection and reads the body frame by frame.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        // A cut response makes the connection fail; the body read below reports that.
        let _ = conn.await;
    });
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, mut body) = response.into_parts();
    let mut frames = Vec::new();
    let mut error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => frames.extend(frame.into_data().ok()),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    Reply {
        status: parts.status,
        headers: parts.headers,
        frames,
        error,
    }
}

async fn post_json(mock: &MockUpstream, path: &str, body: Value) -> Reply {
    send(mock.addr(), Method::POST, path, &[], Some(body)).await
}

fn chat(question: &str) -> Value {
    json!({
        "model": "gpt-test",
        "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": question },
        ],
    })
}

fn streaming_chat(question: &str) -> Value {
    let mut body = chat(question);
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    body
}

/// Concatenates the content deltas of choice `index` in a stream.
fn streamed_text(chunks: &[Value], index: u64) -> String {
    chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().unwrap().iter())
        .filter(|choice| choice["index"] == index)
        .filter_map(|choice| choice["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn non_streaming_answer_names_the_question_and_is_counted() {
    let mock = MockUpstream::start().await.unwrap();
    assert_eq!(mock.base_url(), format!("http://{}/v1", mock.addr()));
    let reply = send(
        mock.addr(),
        Method::POST,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-test")],
        Some(chat("what is the capital of France?")),
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "chatcmpl-mock-1");
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["created"], MOCK_CREATED);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "deja-mock answer to: what is the capital of France?"
    );
    // Words: "be brief" (2) + the question (6); the answer has 9.
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 8, "completion_tokens": 9, "total_tokens": 17 })
    );
    assert_eq!(
        mock.stats(),
        MockStats {
            chat_calls: 1,
            total_calls: 1,
            ..MockStats::default()
        }
    );
    assert_eq!(mock.last_authorization().as_deref(), Some("Bearer sk-test"));

    // Same question, same answer; only the id moves on.
    let again = post_json(
        &mock,
        "/v1/chat/completions",
        chat("what is the capital of France?"),
    )
    .await
    .json();
    assert_eq!(again["id"], "chatcmpl-mock-2");
    assert_eq!(again["choices"], body["choices"]);
    assert_eq!(mock.stats().chat_calls, 2);
    assert_eq!(mock.last_authorization(), None);
}

#[tokio::test]
async fn content_parts_are_joined() {
    let mock = MockUpstream::start().await.unwrap();
    let body = json!({
        "model": "m",
        "messages": [
            { "role": "user", "content": "earlier turn" },
            { "role": "assistant", "content": "ok" },
            { "role": "user", "content": [
                { "type": "text", "text": "describe" },
                { "type": "image_url", "image_url": { "url": "data:," } },
                { "type": "text", "text": "this" },
            ] },
        ],
    });
    let reply = post_json(&mock, "/v1/chat/completions", body).await.json();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "deja-mock answer to: describe this"
    );
}

#[tokio::test]
async fn n_gives_distinct_indexed_choices() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = chat("hi");
    body["n"] = json!(2);
    let reply = post_json(&mock, "/v1/chat/completions", body.clone())
        .await
        .json();
    let choices = reply["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[0]["message"]["content"], "deja-mock answer to: hi");
    assert_eq!(
        choices[1]["message"]["content"],
        "deja-mock answer to: hi (choice 1)"
    );

    body["stream"] = json!(true);
    let chunks = post_json(&mock, "/v1/chat/completions", body)
        .await
        .sse_json();
    assert_eq!(streamed_text(&chunks, 0), "deja-mock answer to: hi");
    assert_eq!(
        streamed_text(&chunks, 1),
        "deja-mock answer to: hi (choice 1)"
    );
    assert_eq!(mock.stats().chat_calls, 2);
}

#[tokio::test]
async fn stream_sends_role_content_finish_usage_then_done() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = post_json(
        &mock,
        "/v1/chat/completions",
        streaming_chat("why is the sky blue"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "text/event-stream");
    assert!(reply.error.is_none());

    let data = reply.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = reply.sse_json();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-mock-1"));
    assert!(chunks.iter().all(|c| c["model"] == "gpt-test"));

    let first = &chunks[0]["choices"][0];
    assert_eq!(
        first["delta"],
        json!({ "role": "assistant", "content": "" })
    );

    let content_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(content_chunks >= 3, "only {content_chunks} content chunks");
    assert_eq!(
        streamed_text(&chunks, 0),
        "deja-mock answer to: why is the sky blue"
    );

    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["usage"], Value::Null);

    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({ "prompt_tokens": 7, "completion_tokens": 8, "total_tokens": 15 })
    );
    assert_eq!(mock.stats().chat_calls, 1);
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk() {
    let mock = MockUpstream::start().await.unwrap();
    let mut body = chat("hello there");
    body["stream"] = json!(true);
    let chunks = post_json(&mock, "/v1/chat/completions", body)
        .await
        .sse_json();
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn stream_is_delivered_chunk_by_chunk() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = send(
        mock.addr(),
        Method::POST,
        "/v1/chat/completions",
        &[(CHUNK_DELAY_HEADER, "5")],
        Some(streaming_chat("one two three")),
    )
    .await;
    // With a delay before every event each arrives in its own frame.
    assert_eq!(reply.frames.len(), reply.sse_data().len());
    assert!(reply.frames.len() >= 6);
}

#[tokio::test]
async fn server_error_fault_by_header_and_by_marker() {
    let mock = MockUpstream::start().await.unwrap();
    let expected = json!({
        "error": {
            "message": "mock upstream failure",
            "type": "server_error",
            "param": null,
            "code": null,
        }
    });
    let by_header = send(
        mock.addr(),
        Method::POST,
        "/v1/chat/completions",
        &[(FAULT_HEADER, "500")],
        Some(chat("hi")),
    )
    .await;
    assert_eq!(by_header.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(by_header.json(), expected);

    let by_marker = post_json(
        &mock,
        "/v1/chat/completions",
        streaming_chat("hi [mock:500]"),
    )
    .await;
    assert_eq!(by_marker.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(by_marker.json(), expected);
    assert_eq!(mock.stats().chat_calls, 2);
}

#[tokio::test]
async fn rate_limit_fault() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = post_json(&mock, "/v1/chat/completions", chat("[mock:429] hi")).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    let body = reply.json();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["param"], Value::Null);
    assert!(body["error"]["message"].is_string());
    assert_eq!(mock.stats().chat_calls, 1);
}

#[tokio::test]
async fn slow_fault_delays_the_answer() {
    let mock = MockUpstream::start().await.unwrap();
    let started = tokio::time::Instant::now();
    let reply = post_json(&mock, "/v1/chat/completions", chat("[mock:slow=150] hi")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn cut_stream_ends_early_without_finish_or_done() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = post_json(
        &mock,
        "/v1/chat/completions",
        streaming_chat("tell me a long story [mock:cut=2]"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.error.is_some(), "client must see the cut as an error");
    let data = reply.sse_data();
    assert_eq!(data.len(), 2);
    assert!(data.iter().all(|d| d != "[DONE]"));
    assert!(reply
        .sse_json()
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null()));
    assert_eq!(mock.stats().chat_calls, 1);
}

#[tokio::test]
async fn cut_non_stream_sends_a_truncated_body() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = send(
        mock.addr(),
        Method::POST,
        "/v1/chat/completions",
        &[(FAULT_HEADER, "cut=1")],
        Some(chat("hi")),
    )
    .await;
    assert!(reply.error.is_some());
    assert!(serde_json::from_slice::<Value>(&reply.body()).is_err());
}

#[tokio::test]
async fn unknown_fault_is_a_bad_request() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = post_json(&mock, "/v1/chat/completions", chat("[mock:explode]")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
}

#[test]
fn fault_specs_parse() {
    /// Headers, prompt text, and the faults they select (`None`: a 400).
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        Option<Faults>,
    );
    let cases: [Case; 6] = [
        (&[], "plain question", Some(Faults::default())),
        (
            &[(FAULT_HEADER, "slow=100, cut=3")],
            "",
            Some(Faults {
                slow_ms: 100,
                cut_after: Some(3),
                ..Faults::default()
            }),
        ),
        (
            &[],
            "a [mock:429] b [mock:slow=5]",
            Some(Faults {
                fail: Some(FailWith::RateLimited),
                slow_ms: 5,
                ..Faults::default()
            }),
        ),
        (
            &[(CHUNK_DELAY_HEADER, "7")],
            "[mock:500]",
            Some(Faults {
                fail: Some(FailWith::ServerError),
                chunk_delay_ms: 7,
                ..Faults::default()
            }),
        ),
        (&[(FAULT_HEADER, "slow=soon")], "", None),
        (&[], "[mock:404]", None),
    ];
    for (headers, text, expected) in cases {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        let got = Faults::collect(&map, [text]).ok();
        assert_eq!(got, expected, "headers {headers:?}, text {text:?}");
    }
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test]
async fn embeddings_are_deterministic_normalised_and_counted() {
    let mock = MockUpstream::start().await.unwrap();
    let request = json!({ "model": "emb", "input": ["alpha", "beta", "alpha"] });
    let reply = post_json(&mock, "/v1/embeddings", request.clone()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "emb");
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 3, "total_tokens": 3 })
    );
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
    }
    let vectors: Vec<Vec<f32>> = data.iter().map(|d| floats(&d["embedding"])).collect();
    assert_eq!(vectors[0].len(), DEFAULT_EMBEDDING_DIMENSIONS);
    assert!((norm(&vectors[0]) - 1.0).abs() < 1e-5);
    assert_eq!(vectors[0], vectors[2]);
    assert_ne!(vectors[0], vectors[1]);

    let again = post_json(&mock, "/v1/embeddings", request).await.json();
    assert_eq!(again, body);
    assert_eq!(
        mock.stats(),
        MockStats {
            embedding_calls: 2,
            responses_calls: 0,
            embedding_items: 6,
            total_calls: 2,
            ..MockStats::default()
        }
    );
}

#[tokio::test]
async fn embeddings_honour_dimensions_and_base64() {
    let mock = MockUpstream::start().await.unwrap();
    let float = post_json(
        &mock,
        "/v1/embeddings",
        json!({ "model": "emb", "input": "hello", "dimensions": 64 }),
    )
    .await
    .json();
    let float = floats(&float["data"][0]["embedding"]);
    assert_eq!(float.len(), 64);
    assert!((norm(&float) - 1.0).abs() < 1e-5);

    let encoded = post_json(
        &mock,
        "/v1/embeddings",
        json!({ "model": "emb", "input": "hello", "dimensions": 64, "encoding_format": "base64" }),
    )
    .await
    .json();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, float);
}

#[tokio::test]
async fn embeddings_accept_token_inputs() {
    let mock = MockUpstream::start().await.unwrap();
    let one = post_json(&mock, "/v1/embeddings", json!({ "input": [1, 2, 3] }))
        .await
        .json();
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["usage"]["prompt_tokens"], 3);

    let many = post_json(
        &mock,
        "/v1/embeddings",
        json!({ "input": [[1, 2, 3], [4]] }),
    )
    .await
    .json();
    assert_eq!(many["data"].as_array().unwrap().len(), 2);
    assert_eq!(many["data"][0]["embedding"], one["data"][0]["embedding"]);
    assert_eq!(mock.stats().embedding_items, 3);

    let bad = post_json(&mock, "/v1/embeddings", json!({ "input": [] })).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn embedding_faults_come_from_input_markers() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = post_json(
        &mock,
        "/v1/embeddings",
        json!({ "input": ["fine", "broken [mock:500]"] }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(mock.stats().embedding_calls, 1);
    assert_eq!(mock.stats().embedding_items, 2);
}

#[tokio::test]
async fn stats_and_reset_endpoints() {
    let mock = MockUpstream::start().await.unwrap();
    post_json(&mock, "/v1/chat/completions", chat("hi")).await;
    post_json(&mock, "/v1/embeddings", json!({ "input": "x" })).await;
    send(mock.addr(), Method::GET, "/v1/models", &[], None).await;

    let stats = send(mock.addr(), Method::GET, "/mock/stats", &[], None).await;
    let stats: MockStats = serde_json::from_slice(&stats.body()).unwrap();
    assert_eq!(
        stats,
        MockStats {
            chat_calls: 1,
            embedding_calls: 1,
            responses_calls: 0,
            embedding_items: 1,
            other_calls: 1,
            total_calls: 3,
        }
    );
    // Reading the stats is not itself a call.
    assert_eq!(mock.stats(), stats);

    let reset = send(mock.addr(), Method::POST, "/mock/reset", &[], None).await;
    assert_eq!(reset.status, StatusCode::OK);
    assert_eq!(mock.stats(), MockStats::default());
}

#[tokio::test]
async fn reset_zeroes_counters_and_authorization() {
    let mock = MockUpstream::start().await.unwrap();
    send(
        mock.addr(),
        Method::GET,
        "/v1/models",
        &[("authorization", "Bearer k")],
        None,
    )
    .await;
    let last = send(
        mock.addr(),
        Method::GET,
        "/mock/last-authorization",
        &[],
        None,
    )
    .await;
    assert_eq!(last.json(), json!({ "authorization": "Bearer k" }));
    mock.reset();
    assert_eq!(mock.stats(), MockStats::default());
    assert_eq!(mock.last_authorization(), None);
}

#[tokio::test]
async fn models_and_unknown_paths_without_a_socket() {
    let state = MockState::new();
    let request = |method: &str, path: &str| {
        axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap()
    };
    let models = router(state.clone())
        .oneshot(request("GET", "/v1/models"))
        .await
        .unwrap();
    assert_eq!(models.status(), StatusCode::OK);
    let models: Value =
        serde_json::from_slice(&models.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"].as_array().unwrap().len(), MODELS.len());

    let missing = router(state.clone())
        .oneshot(request("POST", "/v1/nope"))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing: Value =
        serde_json::from_slice(&missing.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        missing,
        json!({ "error": {
            "message": "Invalid URL (POST /v1/nope)",
            "type": "invalid_request_error",
            "param": null,
            "code": "unknown_url",
        } })
    );
    assert_eq!(
        state.stats(),
        MockStats {
            other_calls: 2,
            total_calls: 2,
            ..MockStats::default()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Responses API

/// The named events of a Responses stream: each event's name and its data.
fn named_events(reply: &Reply) -> Vec<(String, Value)> {
    String::from_utf8(reply.body())
        .unwrap()
        .split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let (name, data) = event
                .split_once('\n')
                .expect("an event line and a data line");
            let name = name
                .strip_prefix("event: ")
                .expect("event line")
                .to_string();
            let data = data.strip_prefix("data: ").expect("data line");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn responses_answer_the_last_user_message_and_are_counted() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = post_json(
        &mock,
        "/v1/responses",
        json!({"model": "gpt-test", "instructions": "be brief", "input": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "input_text", "text": "what is"}, {"type": "input_text", "text": "rust?"}]}
        ]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["id"], "resp_mock_1");
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["store"], true);
    assert_eq!(body["instructions"], "be brief");
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "deja-mock answer to: what is rust?"
    );
    // Input: "first", "ok", "what is rust?" and the instructions' two words.
    assert_eq!(body["usage"]["input_tokens"], 7);
    assert_eq!(body["usage"]["output_tokens"], 6);
    assert_eq!(
        mock.stats(),
        MockStats {
            responses_calls: 1,
            total_calls: 1,
            ..MockStats::default()
        }
    );
    assert_eq!(mock.state().chat_questions(), ["what is rust?"]);

    // A string input is the user message; set_answer applies.
    mock.state().set_answer("hello", "hi there");
    let reply = post_json(
        &mock,
        "/v1/responses",
        json!({"model": "m", "input": "hello", "store": false}),
    )
    .await;
    let body = reply.json();
    assert_eq!(body["output"][0]["content"][0]["text"], "hi there");
    assert_eq!(body["store"], false);
    assert_eq!(body["id"], "resp_mock_2");
}

#[tokio::test]
async fn responses_stream_named_numbered_events_ending_with_completed() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = post_json(
        &mock,
        "/v1/responses",
        json!({"model": "m", "input": "tell me more", "stream": true}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "text/event-stream");
    let events = named_events(&reply);
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i as u64);
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        names[names.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "deja-mock answer to: tell me more");
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0]["content"][0]["text"], text);
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    assert_eq!(mock.stats().responses_calls, 1);

    // A cut stream never completes.
    let cut = post_json(
        &mock,
        "/v1/responses",
        json!({"model": "m", "input": "tell me a long story [mock:cut=3]", "stream": true}),
    )
    .await;
    assert!(cut.error.is_some(), "client must see the cut as an error");
    let events = named_events(&cut);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|(n, _)| n != "response.completed"));
}

#[tokio::test]
async fn responses_in_the_background_are_queued_and_faults_apply() {
    let mock = MockUpstream::start().await.unwrap();
    let reply = post_json(
        &mock,
        "/v1/responses",
        json!({"model": "m", "input": "later", "background": true}),
    )
    .await;
    let body = reply.json();
    assert_eq!(body["status"], "queued");
    assert_eq!(body["output"], json!([]));
    assert_eq!(body["background"], true);
    let failed = post_json(
        &mock,
        "/v1/responses",
        json!({"model": "m", "input": "x [mock:500]"}),
    )
    .await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    let bad = send(mock.addr(), Method::POST, "/v1/responses", &[], None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(mock.stats().responses_calls, 3);
}

#[tokio::test]
async fn azure_deployment_routes_answer_as_the_deployment_and_are_counted() {
    let mock = MockUpstream::start().await.unwrap();
    assert_eq!(mock.azure_endpoint(), format!("http://{}", mock.addr()));
    let key = [("api-key", "az-key")];
    let path = "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21";
    let mut body = chat("What is Rust?");
    body.as_object_mut().unwrap().remove("model");
    let reply = send(mock.addr(), Method::POST, path, &key, Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::OK);
    let answer = reply.json();
    assert_eq!(answer["model"], "my-gpt", "the deployment names the model");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "deja-mock answer to: What is Rust?"
    );
    // A model in the body is answered as the body names it; a stream as OpenAI's.
    let reply = send(mock.addr(), Method::POST, path, &key, Some(chat("x"))).await;
    assert_eq!(reply.json()["model"], "gpt-test");
    body["stream"] = json!(true);
    let reply = send(mock.addr(), Method::POST, path, &key, Some(body)).await;
    let chunks = reply.sse_json();
    assert_eq!(chunks[0]["model"], "my-gpt");
    assert_eq!(
        streamed_text(&chunks, 0),
        "deja-mock answer to: What is Rust?"
    );
    assert_eq!(reply.sse_data().last().unwrap(), "[DONE]");

    let path = "/openai/deployments/my-emb/embeddings?api-version=2024-10-21";
    let reply = send(
        mock.addr(),
        Method::POST,
        path,
        &key,
        Some(json!({"input": ["a", "b"]})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["model"], "my-emb");
    assert_eq!(reply.json()["data"].as_array().unwrap().len(), 2);

    assert_eq!(
        mock.stats(),
        MockStats {
            chat_calls: 3,
            embedding_calls: 1,
            embedding_items: 2,
            total_calls: 4,
            ..MockStats::default()
        }
    );
    let seen = mock.state().requests();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].path_and_query, path);
    assert_eq!(seen[3].headers["api-key"], "az-key");
    // The same, for a test in another process.
    let listed = send(mock.addr(), Method::GET, "/mock/requests", &[], None)
        .await
        .json();
    assert_eq!(
        listed.as_array().unwrap().len(),
        4,
        "/mock/ is not recorded"
    );
    assert_eq!(listed[3]["method"], "POST");
    assert_eq!(listed[3]["path"], path);
    assert_eq!(listed[3]["headers"]["api-key"], "az-key");
}

#[tokio::test]
async fn azure_v1_routes_take_the_model_from_the_body_and_a_bearer_token() {
    let mock = MockUpstream::start().await.unwrap();
    let bearer = [("authorization", "Bearer az-key")];
    let reply = send(
        mock.addr(),
        Method::POST,
        "/openai/v1/chat/completions",
        &bearer,
        Some(chat("hi")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["model"], "gpt-test");
    let reply = send(
        mock.addr(),
        Method::POST,
        "/openai/v1/embeddings?api-version=preview",
        &bearer,
        Some(json!({"model": "emb", "input": "a"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["model"], "emb");
    assert_eq!(mock.stats().chat_calls, 1);
    assert_eq!(mock.stats().embedding_calls, 1);
    assert_eq!(mock.last_authorization().as_deref(), Some("Bearer az-key"));
}

#[tokio::test]
async fn azure_refusals_come_in_azures_shape_and_are_counted() {
    let mock = MockUpstream::start().await.unwrap();
    let chat_path = "/openai/deployments/d/chat/completions";
    /// Path, headers, the status and the start of the message Azure answers.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], StatusCode, &'a str);
    let cases: &[Case] = &[
        (
            chat_path,
            &[("api-key", "k")],
            StatusCode::NOT_FOUND,
            "Resource not found",
        ),
        (
            "/openai/deployments/d/embeddings?api-version=",
            &[("api-key", "k")],
            StatusCode::NOT_FOUND,
            "Resource not found",
        ),
        (
            "/openai/deployments/d/chat/completions?api-version=2024-10-21",
            &[],
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key",
        ),
        (
            "/openai/v1/chat/completions",
            &[],
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key",
        ),
        (
            "/openai/v1/embeddings",
            &[("api-key", "")],
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key",
        ),
    ];
    for (path, headers, status, message) in cases {
        let reply = send(mock.addr(), Method::POST, path, headers, Some(chat("x"))).await;
        assert_eq!(reply.status, *status, "{path}");
        let body = reply.json();
        assert_eq!(body["error"]["code"], status.as_u16().to_string(), "{path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(message),
            "{path}: {body}"
        );
    }
    assert_eq!(
        mock.stats(),
        MockStats {
            chat_calls: 3,
            embedding_calls: 2,
            total_calls: 5,
            ..MockStats::default()
        }
    );
}
