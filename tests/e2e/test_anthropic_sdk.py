"""End to end: the official `anthropic` Python SDK pointed at a real `deja serve`, in front
of `deja mock-upstream --anthropic`. Checks the Messages API plain and streamed (both
`messages.stream` and `stream=True`), exact and semantic hits, answers recorded one way
and served the other, errors in Anthropic's shape, and that hits make no upstream calls
(the mock counts them).

Usage: python tests/e2e/test_anthropic_sdk.py --deja target/debug/deja
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import anthropic
from harness import free_port, get_json, wait_http

MODEL = "claude-opus-4-6"


def text_of(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deja", required=True)
    args = ap.parse_args()
    deja = os.path.abspath(args.deja)
    tmp = tempfile.mkdtemp(prefix="deja-e2e-anthropic-")
    procs = []
    try:
        mock_port, deja_port = free_port(), free_port()
        mock = f"http://127.0.0.1:{mock_port}"
        calls = lambda: get_json(f"{mock}/mock/stats")["message_calls"]  # noqa: E731
        procs.append(
            subprocess.Popen([deja, "mock-upstream", "--anthropic",
                              "--listen", f"127.0.0.1:{mock_port}"], stdout=subprocess.DEVNULL)
        )
        wait_http(f"{mock}/mock/stats", procs[-1], "mock Anthropic upstream")
        env = dict(os.environ, DEJA_ANTHROPIC_BASE_URL=mock)
        # The client's own key is forwarded (and hashed into its tenant) unless deja has one.
        env.pop("ANTHROPIC_API_KEY", None)
        procs.append(
            subprocess.Popen([
                deja, "serve", "--listen", f"127.0.0.1:{deja_port}",
                "--data-dir", os.path.join(tmp, "data"),
                # Nothing here goes to the OpenAI-compatible upstream.
                "--upstream", "http://127.0.0.1:9/v1",
            ], env=env)
        )
        wait_http(f"http://127.0.0.1:{deja_port}/health", procs[-1], "deja")
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{deja_port}",
                                     api_key="sk-ant-e2e", max_retries=0)

        # Not streamed: a miss, then an exact hit with no upstream call.
        msgs = [{"role": "user", "content": "How do I reset my password?"}]
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=256,
                                                       messages=msgs)
        assert raw.headers["x-deja-cache"] == "miss", raw.headers
        first = raw.parse()
        assert first.type == "message" and first.stop_reason == "end_turn", first
        assert text_of(first) == "deja-mock answer to: How do I reset my password?", first
        assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
        # The client's credential reached Anthropic in the header the SDK put it in
        # (`x-api-key`, or a bearer token in newer SDKs).
        seen = get_json(f"{mock}/mock/last-headers")
        assert "sk-ant-e2e" in (seen["x-api-key"], (seen["authorization"] or "")[7:]), seen
        assert seen["anthropic-version"], seen
        before = calls()
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=256,
                                                       messages=msgs)
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
        assert raw.parse() == first
        assert calls() == before, "an exact hit must not call upstream"

        # A paraphrase is a semantic hit; another max_tokens is another partition.
        para = [{"role": "user", "content": "how can I reset my password"}]
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=256,
                                                       messages=para)
        assert raw.headers["x-deja-cache"] == "hit-semantic", raw.headers
        assert float(raw.headers["x-deja-similarity"]) >= 0.9
        assert text_of(raw.parse()) == text_of(first)
        assert calls() == before
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=3,
                                                       messages=msgs)
        assert raw.headers["x-deja-cache"] == "miss", raw.headers
        assert raw.parse().stop_reason == "max_tokens"
        assert calls() == before + 1

        # Streamed with the SDK's helper: a miss streams through and is recorded; asked
        # again it is replayed as events, and the SDK assembles the same message.
        smsgs = [{"role": "user", "content": "Write a haiku about autumn leaves"}]
        calls_before = calls()
        with client.messages.stream(model=MODEL, max_tokens=256, messages=smsgs) as stream:
            assert stream.response.headers["x-deja-cache"] == "miss", stream.response.headers
            text = "".join(stream.text_stream)
            streamed_final = stream.get_final_message()
        assert text == "deja-mock answer to: Write a haiku about autumn leaves", text
        assert calls() == calls_before + 1
        with client.messages.stream(model=MODEL, max_tokens=256, messages=smsgs) as stream:
            assert stream.response.headers["x-deja-cache"] == "hit-exact", stream.response.headers
            replay = "".join(stream.text_stream)
            replay_final = stream.get_final_message()
        assert replay == text, (replay, text)
        assert replay_final == streamed_final, (replay_final, streamed_final)
        # The recorded stream answers a client that does not stream.
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=256,
                                                       messages=smsgs)
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
        as_json = raw.parse()
        assert text_of(as_json) == text
        assert as_json.usage.output_tokens == streamed_final.usage.output_tokens
        # And the JSON entry answers `stream=True`, event by event.
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=256,
                                                       messages=msgs, stream=True)
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
        kinds, deltas = [], []
        for event in raw.parse():
            kinds.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                deltas.append(event.delta.text)
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
        assert "".join(deltas) == text_of(first)
        assert calls() == calls_before + 1, "replays make no upstream calls"

        # deja's own errors come in Anthropic's shape ...
        try:
            client.messages.create(model=MODEL, max_tokens=0, messages=msgs)
            raise AssertionError("max_tokens = 0 must be rejected")
        except anthropic.BadRequestError as e:
            assert e.body["type"] == "error", e.body
            assert e.body["error"]["type"] == "invalid_request_error", e.body
            assert "max_tokens" in e.body["error"]["message"], e.body
        # ... and the upstream's pass through unchanged and are never cached.
        for _ in range(2):
            n = calls()
            try:
                client.messages.create(model=MODEL, max_tokens=64, messages=[
                    {"role": "user", "content": "Are you there? [mock:529]"}])
                raise AssertionError("the mock's 529 must reach the client")
            except anthropic.APIStatusError as e:
                assert e.status_code == 529, e
                assert e.body["error"]["type"] == "overloaded_error", e.body
            assert calls() == n + 1

        # `deja stats` reads the counters the server persisted when it stopped, with the
        # token usage the answers recorded.
        deja_proc = procs.pop()
        deja_proc.send_signal(signal.SIGTERM)
        assert deja_proc.wait(timeout=30) == 0, "deja exits cleanly on SIGTERM"
        out = subprocess.run([deja, "stats", "--data-dir", os.path.join(tmp, "data"), "--json"],
                             check=True, capture_output=True, text=True).stdout
        stats = json.loads(out)
        assert stats["exact_hits"] >= 4 and stats["semantic_hits"] >= 1, stats
        assert stats["entries"] >= 3, stats
        assert stats["completion_tokens_saved"] > 0, stats

        print("e2e (anthropic): all checks passed")
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
