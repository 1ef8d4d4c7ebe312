"""End to end: the official `openai` Python SDK pointed at a real `deja serve`, in front of
`deja mock-upstream`. Checks chat (plain and streamed), the Responses API (plain and
streamed) and embeddings, exact and semantic hits, and that hits make no upstream calls
(the mock counts them).

Usage: python tests/e2e/test_openai_sdk.py --deja target/debug/deja
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import openai
from harness import free_port, get_json, wait_http


def mock_stats(mock: str) -> dict:
    return get_json(f"{mock}/mock/stats")


def check_responses(client: openai.OpenAI, mock: str) -> None:
    """The Responses API (`client.responses.create`), not streamed and streamed: miss, exact
    and semantic hits with no upstream call, a stored response served as events and a
    recorded stream served as a response, and `background` passed through uncached."""
    ask = dict(model="gpt-4o-mini", instructions="You are terse.")
    raw = client.responses.with_raw_response.create(input="How do I cancel my subscription?", **ask)
    first = raw.parse()
    assert raw.headers["x-deja-cache"] == "miss", raw.headers
    assert first.status == "completed" and "cancel my subscription" in first.output_text, first
    calls = mock_stats(mock)["responses_calls"]
    raw = client.responses.with_raw_response.create(
        input=[{"role": "user", "content": "How do I cancel my subscription?"}], **ask)
    assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
    assert raw.parse().output_text == first.output_text
    raw = client.responses.with_raw_response.create(input="how can I cancel my subscription", **ask)
    assert raw.headers["x-deja-cache"] == "hit-semantic", raw.headers
    assert raw.parse().id == first.id
    assert mock_stats(mock)["responses_calls"] == calls, "hits must not call upstream"

    # The stored response, streamed: the SDK's typed events rebuild the same text.
    with client.responses.with_streaming_response.create(
            input="How do I cancel my subscription?", stream=True, **ask) as resp:
        assert resp.headers["x-deja-cache"] == "hit-exact", resp.headers
        events = list(resp.parse())
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    delta = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert delta == first.output_text, (delta, first.output_text)
    assert events[-1].response.output_text == first.output_text
    assert mock_stats(mock)["responses_calls"] == calls

    # A streamed miss, then its recording served streamed (the SDK's stream helper) and not.
    streamed = client.responses.create(input="Write a haiku about the sea", stream=True, **ask)
    text = "".join(e.delta for e in streamed if e.type == "response.output_text.delta")
    assert "haiku about the sea" in text, text
    calls = mock_stats(mock)["responses_calls"]
    with client.responses.stream(input="Write a haiku about the sea", **ask) as stream:
        replay = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert replay == text and final.output_text == text, (replay, final.output_text)
    again = client.responses.create(input="Write a haiku about the sea", **ask)
    assert again.output_text == text and again.status == "completed"
    assert mock_stats(mock)["responses_calls"] == calls

    # Background responses are the provider's to keep: passed through, never cached.
    for _ in range(2):
        raw = client.responses.with_raw_response.create(
            input="Write a report on tides", background=True, **ask)
        assert raw.headers["x-deja-cache"] == "bypass", raw.headers
        assert raw.headers["x-deja-bypass-reason"] == "background", raw.headers
        assert raw.parse().status == "queued"
    assert mock_stats(mock)["responses_calls"] == calls + 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deja", required=True)
    args = ap.parse_args()
    deja = os.path.abspath(args.deja)
    tmp = tempfile.mkdtemp(prefix="deja-e2e-")
    procs = []
    try:
        mock_port, deja_port = free_port(), free_port()
        mock = f"http://127.0.0.1:{mock_port}"
        procs.append(
            subprocess.Popen([deja, "mock-upstream", "--listen", f"127.0.0.1:{mock_port}"],
                             stdout=subprocess.DEVNULL)
        )
        wait_http(f"{mock}/mock/stats", procs[-1], "mock upstream")
        procs.append(
            subprocess.Popen([
                deja, "serve", "--listen", f"127.0.0.1:{deja_port}",
                "--data-dir", os.path.join(tmp, "data"), "--upstream", f"{mock}/v1",
            ])
        )
        wait_http(f"http://127.0.0.1:{deja_port}/health", procs[-1], "deja")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{deja_port}/v1", api_key="sk-e2e",
                               max_retries=0)

        # Chat, not streamed: miss, then exact hit with 0 upstream calls.
        msgs = [{"role": "user", "content": "How do I reset my password?"}]
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
        first = raw.parse()
        assert raw.headers["x-deja-cache"] == "miss", raw.headers
        assert "reset my password" in first.choices[0].message.content
        before = mock_stats(mock)["chat_calls"]
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
        again = raw.parse()
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
        assert again.choices[0].message.content == first.choices[0].message.content
        assert mock_stats(mock)["chat_calls"] == before, "an exact hit must not call upstream"

        # A paraphrase is a semantic hit.
        para = [{"role": "user", "content": "how can I reset my password"}]
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=para)
        assert raw.headers["x-deja-cache"] == "hit-semantic", raw.headers
        assert float(raw.headers["x-deja-similarity"]) >= 0.9
        assert mock_stats(mock)["chat_calls"] == before

        # Streamed: a miss streams through; the same question streamed again is a hit,
        # replayed as SSE with the same text; the non-streamed entry serves a stream too.
        smsgs = [{"role": "user", "content": "Write a haiku about autumn leaves"}]
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="gpt-4o-mini", messages=smsgs, stream=True) if c.choices)
        assert "haiku about autumn leaves" in text, text
        calls = mock_stats(mock)["chat_calls"]
        with client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=smsgs, stream=True) as resp:
            assert resp.headers["x-deja-cache"] == "hit-exact", resp.headers
            replay = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
        assert replay == text, (replay, text)
        streamed_from_json = "".join(
            c.choices[0].delta.content or "" for c in client.chat.completions.create(
                model="gpt-4o-mini", messages=msgs, stream=True) if c.choices)
        assert streamed_from_json == first.choices[0].message.content
        assert mock_stats(mock)["chat_calls"] == calls

        # Embeddings: batched, only misses go upstream, float and base64.
        e1 = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
        assert [d.index for d in e1.data] == [0, 1]
        items = mock_stats(mock)["embedding_items"]
        e2 = client.embeddings.create(model="text-embedding-3-small", input=["beta", "gamma", "alpha"])
        assert mock_stats(mock)["embedding_items"] == items + 1, "only 'gamma' goes upstream"
        assert e2.data[0].embedding == e1.data[1].embedding
        assert e2.data[2].embedding == e1.data[0].embedding
        e3 = client.embeddings.create(model="text-embedding-3-small", input="alpha",
                                      encoding_format="base64")
        assert len(e3.data) == 1

        check_responses(client, mock)

        # Errors come back in OpenAI's shape.
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=[], temperature=0.1)
            raise AssertionError("empty messages must be rejected")
        except openai.BadRequestError as e:
            assert e.body and "message" in e.body, e.body

        # `deja stats` reads the counters the server persisted when it stopped.
        deja_proc = procs.pop()
        deja_proc.send_signal(signal.SIGTERM)
        assert deja_proc.wait(timeout=30) == 0, "deja exits cleanly on SIGTERM"
        out = subprocess.run([deja, "stats", "--data-dir", os.path.join(tmp, "data"), "--json"],
                             check=True, capture_output=True, text=True).stdout
        stats = json.loads(out)
        assert stats["exact_hits"] >= 3 and stats["semantic_hits"] >= 1, stats
        assert stats["embedding_hits"] >= 3 and stats["entries"] >= 3, stats
        assert stats["completion_tokens_saved"] > 0, stats

        print("e2e: all checks passed")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
