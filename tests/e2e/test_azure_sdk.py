"""End to end: the official `openai` Python SDK's `AzureOpenAI` client pointed at a real
`deja serve` (its `azure_endpoint` is deja), in front of `deja mock-upstream`, which serves
Azure OpenAI's paths and counts its calls. Checks chat (plain and streamed) and embeddings
on the deployment routes, `api-version` forwarded and keyed, exact and semantic hits with
no upstream call, and Azure's v1 API (chat and the Responses API) through the plain `OpenAI`
client.

Usage: python tests/e2e/test_azure_sdk.py --deja target/debug/deja
"""

import argparse
import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

import openai
from harness import free_port, get_json, wait_http

API_VERSION = "2024-10-21"
KEY = "azure-e2e-key"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deja", required=True)
    args = ap.parse_args()
    deja = os.path.abspath(args.deja)
    tmp = tempfile.mkdtemp(prefix="deja-e2e-azure-")
    procs = []
    try:
        mock_port, deja_port = free_port(), free_port()
        mock = f"http://127.0.0.1:{mock_port}"
        stats = lambda: get_json(f"{mock}/mock/stats")  # noqa: E731
        procs.append(
            subprocess.Popen([deja, "mock-upstream", "--listen", f"127.0.0.1:{mock_port}"],
                             stdout=subprocess.DEVNULL)
        )
        wait_http(f"{mock}/mock/stats", procs[-1], "mock upstream")
        # The mock is the Azure resource; the client's key is forwarded (and hashed into
        # its tenant), as no DEJA_AZURE_API_KEY is set.
        env = dict(os.environ, DEJA_AZURE_BASE_URL=mock)
        env.pop("DEJA_AZURE_API_KEY", None)
        procs.append(
            subprocess.Popen([
                deja, "serve", "--listen", f"127.0.0.1:{deja_port}",
                "--data-dir", os.path.join(tmp, "data"),
                # Nothing here goes to the OpenAI-compatible upstream.
                "--upstream", "http://127.0.0.1:9/v1",
            ], env=env)
        )
        deja_url = f"http://127.0.0.1:{deja_port}"
        wait_http(f"{deja_url}/health", procs[-1], "deja")
        client = openai.AzureOpenAI(azure_endpoint=deja_url, api_key=KEY,
                                    api_version=API_VERSION, max_retries=0)

        # Chat, not streamed: miss, then exact hit with 0 upstream calls, then a paraphrase.
        msgs = [{"role": "user", "content": "How do I reset my password?"}]
        raw = client.chat.completions.with_raw_response.create(model="support-gpt", messages=msgs)
        first = raw.parse()
        assert raw.headers["x-deja-cache"] == "miss", raw.headers
        assert "reset my password" in first.choices[0].message.content
        seen = get_json(f"{mock}/mock/requests")
        assert seen[-1]["path"] == (
            f"/openai/deployments/support-gpt/chat/completions?api-version={API_VERSION}"), seen
        assert seen[-1]["headers"]["api-key"] == KEY, seen[-1]
        before = stats()["chat_calls"]
        raw = client.chat.completions.with_raw_response.create(model="support-gpt", messages=msgs)
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
        assert raw.parse().choices[0].message.content == first.choices[0].message.content
        para = [{"role": "user", "content": "how can I reset my password"}]
        raw = client.chat.completions.with_raw_response.create(model="support-gpt", messages=para)
        assert raw.headers["x-deja-cache"] == "hit-semantic", raw.headers
        assert stats()["chat_calls"] == before, "a hit must not call upstream"

        # Another api-version is another request; a client bound to its deployment
        # (`azure_deployment=`) reaches the same entries as one naming it per call.
        other = openai.AzureOpenAI(azure_endpoint=deja_url, api_key=KEY,
                                   api_version="2025-01-01-preview", max_retries=0)
        raw = other.chat.completions.with_raw_response.create(model="support-gpt", messages=msgs)
        assert raw.headers["x-deja-cache"] == "miss", raw.headers
        assert stats()["chat_calls"] == before + 1
        bound = openai.AzureOpenAI(azure_endpoint=deja_url, azure_deployment="support-gpt",
                                   api_key=KEY, api_version=API_VERSION, max_retries=0)
        raw = bound.chat.completions.with_raw_response.create(model="support-gpt", messages=msgs)
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers

        # Streamed: a miss streams through; the same question streamed again is a hit,
        # replayed with the same text, and it answers a non-streamed request too.
        smsgs = [{"role": "user", "content": "Write a haiku about autumn leaves"}]
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="support-gpt", messages=smsgs, stream=True) if c.choices)
        assert "haiku about autumn leaves" in text, text
        calls = stats()["chat_calls"]
        with client.chat.completions.with_streaming_response.create(
                model="support-gpt", messages=smsgs, stream=True) as resp:
            assert resp.headers["x-deja-cache"] == "hit-exact", resp.headers
            replay = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
        assert replay == text, (replay, text)
        raw = client.chat.completions.with_raw_response.create(model="support-gpt",
                                                               messages=smsgs)
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
        assert raw.parse().choices[0].message.content == text
        assert stats()["chat_calls"] == calls

        # Embeddings: batched, only misses go upstream, float and base64.
        e1 = client.embeddings.create(model="my-embedding", input=["alpha", "beta"])
        assert [d.index for d in e1.data] == [0, 1]
        items = stats()["embedding_items"]
        raw = client.embeddings.with_raw_response.create(model="my-embedding",
                                                         input=["beta", "gamma", "alpha"])
        e2 = raw.parse()
        assert raw.headers["x-deja-embedding-hits"] == "2/3", raw.headers
        assert stats()["embedding_items"] == items + 1, "only 'gamma' goes upstream"
        assert e2.data[0].embedding == e1.data[1].embedding
        assert e2.data[2].embedding == e1.data[0].embedding
        raw = client.embeddings.with_raw_response.create(model="my-embedding", input="alpha",
                                                         encoding_format="base64")
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
        packed = base64.b64decode(raw.parse().data[0].embedding)
        floats = list(struct.unpack(f"<{len(packed) // 4}f", packed))
        assert floats == e1.data[0].embedding, "the same vector, as little-endian float32"

        # Azure's v1 API, through the plain OpenAI client (a bearer key, `model` in the body).
        v1 = openai.OpenAI(base_url=f"{deja_url}/openai/v1/", api_key=KEY, max_retries=0)
        raw = v1.chat.completions.with_raw_response.create(model="support-gpt", messages=msgs)
        assert raw.headers["x-deja-cache"] == "miss", "not the deployment route's entry"
        assert get_json(f"{mock}/mock/requests")[-1]["path"] == "/openai/v1/chat/completions"
        calls = stats()["chat_calls"]
        raw = v1.chat.completions.with_raw_response.create(model="support-gpt", messages=msgs)
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
        assert stats()["chat_calls"] == calls

        # The Responses API through Azure's v1 API, streamed and not.
        first = v1.responses.create(model="support-gpt", input="How do I rotate my API key?")
        assert first.status == "completed" and "rotate my API key" in first.output_text, first
        assert get_json(f"{mock}/mock/requests")[-1]["path"] == "/openai/v1/responses"
        calls = stats()["responses_calls"]
        raw = v1.responses.with_raw_response.create(model="support-gpt",
                                                    input="How do I rotate my API key?")
        assert raw.headers["x-deja-cache"] == "hit-exact", raw.headers
        with v1.responses.stream(model="support-gpt", input="How do I rotate my API key?") as s:
            assert s.get_final_response().output_text == first.output_text
        assert stats()["responses_calls"] == calls

        # Azure's errors pass through in Azure's shape (an empty api-version is none).
        try:
            bare = openai.AzureOpenAI(azure_endpoint=deja_url, api_key=KEY, api_version="",
                                      max_retries=0)
            bare.chat.completions.create(model="support-gpt", messages=msgs)
            raise AssertionError("a call without api-version must fail")
        except openai.NotFoundError as e:
            assert e.body == {"code": "404", "message": "Resource not found"}, e.body

        deja_proc = procs.pop()
        deja_proc.send_signal(signal.SIGTERM)
        assert deja_proc.wait(timeout=30) == 0, "deja exits cleanly on SIGTERM"
        out = subprocess.run([deja, "stats", "--data-dir", os.path.join(tmp, "data"), "--json"],
                             check=True, capture_output=True, text=True).stdout
        s = json.loads(out)
        assert s["exact_hits"] >= 5 and s["semantic_hits"] >= 1, s
        assert s["embedding_hits"] >= 3, s

        print("e2e azure: all checks passed")
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
