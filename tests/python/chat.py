#!/usr/bin/env python3
"""The official openai client against atelier's /v1/chat/completions (started by
crates/atelier/tests/server.rs with a tiny random-weight Qwen2 model).

Usage: chat.py BASE_URL API_KEY MODEL
Checks: non-stream and stream give the same text for one seed, usage and finish_reason,
json_schema response_format (the answer parses and validates), models list, 404/422 errors.
Prints one line per check and a final 'N passed, N failed' line; exit 1 on any failure.
"""
import json
import sys

import openai

BASE, KEY, MODEL = sys.argv[1], sys.argv[2], sys.argv[3]
passed, failed = 0, 0
client = openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY)
MESSAGES = [{"role": "system", "content": "짧게 답하세요."},
            {"role": "user", "content": "오늘 날씨에 어울리는 영화 제목을 지어 줘"}]


def check(name, fn):
    global passed, failed
    try:
        fn()
        print(f"ok   {name}")
        passed += 1
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        print(f"FAIL {name}: {type(e).__name__}: {e}")
        failed += 1


def non_stream():
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24,
                                          seed=42, temperature=0.9)


def non_stream_check():
    r = non_stream()
    assert r.object == "chat.completion" and r.model == MODEL, r
    c = r.choices[0]
    assert c.message.role == "assistant" and c.finish_reason in ("stop", "length"), c
    assert 0 < r.usage.completion_tokens <= 24 and r.usage.prompt_tokens > 0, r.usage
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    again = non_stream()
    assert again.choices[0].message.content == c.message.content, "same seed, different text"


def stream_check():
    expected = non_stream()
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=24, seed=42, temperature=0.9, stream=True,
        stream_options={"include_usage": True}))
    assert len(chunks) >= 3, chunks
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == expected.choices[0].message.content, (text, expected)
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == [expected.choices[0].finish_reason], finishes
    assert chunks[-1].usage.completion_tokens == expected.usage.completion_tokens, chunks[-1]
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)


def json_schema_check():
    schema = {"type": "object",
              "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 20},
                             "year": {"type": "integer", "minimum": 1900, "maximum": 2100}},
              "required": ["title", "year"], "additionalProperties": False}
    for seed in range(3):
        r = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, seed=seed, max_tokens=400,
            response_format={"type": "json_schema", "json_schema": {"name": "movie", "schema": schema}})
        v = json.loads(r.choices[0].message.content)
        assert set(v) == {"title", "year"}, v
        assert 1 <= len(v["title"]) <= 20 and 1900 <= v["year"] <= 2100, v
        assert r.choices[0].finish_reason == "stop"


def models_check():
    ids = [m.id for m in client.models.list().data]
    assert MODEL in ids, ids


def errors_check():
    try:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError as e:
        err = e.body.get("error", e.body) if isinstance(e.body, dict) else {}
        assert e.status_code == 404 and err.get("code") == "model_not_found", e.body
        assert err.get("field") == "model", e.body
    try:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=7)
        raise AssertionError("temperature 7 accepted")
    except openai.UnprocessableEntityError as e:
        assert "temperature" in str(e), e


check("chat non-stream", non_stream_check)
check("chat stream", stream_check)
check("chat json_schema", json_schema_check)
check("models list", models_check)
check("chat errors", errors_check)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
