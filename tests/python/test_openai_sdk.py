"""The official OpenAI Python SDK against the real gateway binary in front of the mock upstream.

Most tests compare what the SDK gets through the gateway with what it gets from the mock
directly (see the `pair` fixture in conftest.py): a pass-through gateway must be invisible.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from conftest import Launcher, Pair, Routed, make_client

MESSAGES = [{"role": "user", "content": "Say hello to the gateway."}]
MOCK_EXTRA = {"note": "unknown fields must pass through"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
#: What the mock's one tool call always carries.
TOOL_ARGUMENTS = {"location": "Paris"}


def dumps(items) -> list[dict]:
    return [item.model_dump() for item in items]


def chat_stream(client: openai.OpenAI, **params) -> list:
    return list(
        client.chat.completions.create(
            model="mock-gpt",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            **params,
        )
    )


def assemble_tool_calls(chunks) -> dict[int, dict]:
    """Tool-call deltas joined the way a client must join them, by `index`."""
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
    return calls


def raw_post(addr: str, path: str, body: bytes, content_type: str = "application/json"):
    """POSTs `body` as it is; returns (status, headers, body bytes)."""
    host, port = addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": content_type, "Authorization": "Bearer test"},
        )
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


# --- Chat completions ------------------------------------------------------------------------


def test_chat_matches_direct_parsed_and_byte_for_byte(pair: Pair):
    direct = pair.direct.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=MESSAGES
    )
    via = pair.via.chat.completions.with_raw_response.create(model="mock-gpt", messages=MESSAGES)

    assert via.http_response.status_code == 200
    assert via.http_response.content == direct.http_response.content
    assert via.http_response.headers["content-type"].startswith("application/json")
    # The gateway tags every answer with a request id, which the SDK exposes.
    assert via.http_response.headers.get("x-request-id")

    direct_completion, via_completion = direct.parse(), via.parse()
    assert via_completion.model_dump() == direct_completion.model_dump()
    assert via_completion.model_extra == direct_completion.model_extra
    assert via_completion.model_extra["x_mock_extra"] == MOCK_EXTRA
    assert via_completion._request_id == via.http_response.headers["x-request-id"]
    assert via_completion.id == "chatcmpl-mock-1"
    assert via_completion.choices[0].message.content.startswith("Mock reply to 1 messages: ")
    assert via_completion.choices[0].finish_reason == "stop"


def test_chat_stream_with_usage_matches_direct(pair: Pair):
    direct = chat_stream(pair.direct)
    via = chat_stream(pair.via)

    assert dumps(via) == dumps(direct)
    assert len(via) >= 3
    assert all(chunk.model_extra["x_mock_extra"] == MOCK_EXTRA for chunk in via)
    *body, last = via
    assert last.choices == []
    assert last.usage is not None and last.usage.total_tokens > 0
    assert all(chunk.usage is None for chunk in body)
    assert body[-1].choices[0].finish_reason == "stop"

    # The streamed text is the text of the same request without streaming.
    single = pair.via.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    streamed_text = "".join(chunk.choices[0].delta.content or "" for chunk in body if chunk.choices)
    assert streamed_text == single.choices[0].message.content
    assert last.usage.model_dump() == single.usage.model_dump()


def test_chat_stream_raw_bytes_identical(pair: Pair):
    def raw(client: openai.OpenAI) -> tuple[str, bytes]:
        with client.chat.completions.with_streaming_response.create(
            model="mock-gpt",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            return response.headers["content-type"], b"".join(response.iter_bytes())

    direct_type, direct_bytes = raw(pair.direct)
    via_type, via_bytes = raw(pair.via)
    assert via_type.startswith("text/event-stream")
    assert via_bytes == direct_bytes
    assert via_bytes.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize("chunks", ["1", "3", "40"])
def test_chat_stream_any_chunk_count(launcher: Launcher, chunks: str):
    direct_mock = launcher.mock("--stream-chunks", chunks)
    gateway_mock = launcher.mock("--stream-chunks", chunks)
    gateway = launcher.gateway(upstream=[gateway_mock.base_url])
    with make_client(direct_mock.base_url) as direct, make_client(gateway.base_url) as via:
        direct_chunks, via_chunks = chat_stream(direct), chat_stream(via)
    assert dumps(via_chunks) == dumps(direct_chunks)
    # role chunk + one chunk per delta + finish chunk + usage chunk
    assert len(via_chunks) == int(chunks) + 3


def test_async_client_stream_matches_direct(pair: Pair):
    async def collect(base_url: str) -> list[dict]:
        async with openai.AsyncOpenAI(
            base_url=base_url, api_key="test", max_retries=0, timeout=10
        ) as client:
            stream = await client.chat.completions.create(
                model="mock-gpt",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            return [chunk.model_dump() async for chunk in stream]

    direct = asyncio.run(collect(pair.direct_mock.base_url))
    via = asyncio.run(collect(pair.gateway.base_url))
    assert via == direct
    assert via[-1]["usage"] is not None


def test_concurrent_streams_are_not_mixed_up(pair: Pair):
    """Eight streams at once through one gateway each get their own complete answer."""
    expected_text = (
        pair.via.chat.completions.create(model="mock-gpt", messages=MESSAGES)
        .choices[0]
        .message.content
    )
    results: list = [None] * 8

    def run(slot: int) -> None:
        try:
            chunks = chat_stream(pair.via)
            results[slot] = (
                {chunk.id for chunk in chunks},
                "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
                chunks[-1].usage is not None,
            )
        except Exception as error:  # reported below, in the test's thread
            results[slot] = error

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ids = set()
    for result in results:
        assert isinstance(result, tuple), result
        stream_ids, text, has_usage = result
        assert len(stream_ids) == 1 and has_usage
        assert text == expected_text
        ids |= stream_ids
    assert len(ids) == 8


def test_client_abandoning_a_stream_leaves_gateway_usable(pair: Pair):
    stream = pair.via.chat.completions.create(model="mock-gpt", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    # The next requests, streamed or not, are answered in full.
    assert chat_stream(pair.via)[-1].usage is not None
    assert pair.via.chat.completions.create(model="mock-gpt", messages=MESSAGES).choices


# --- Tool calls ------------------------------------------------------------------------------


def test_tool_call_matches_direct(pair: Pair):
    params = {"model": "mock-gpt", "messages": MESSAGES, "tools": [WEATHER_TOOL]}
    direct = pair.direct.chat.completions.with_raw_response.create(**params)
    via = pair.via.chat.completions.with_raw_response.create(**params)

    assert via.http_response.content == direct.http_response.content
    completion = via.parse()
    assert completion.model_dump() == direct.parse().model_dump()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == TOOL_ARGUMENTS


def test_tool_call_stream_matches_direct(pair: Pair):
    direct = chat_stream(pair.direct, tools=[WEATHER_TOOL])
    via = chat_stream(pair.via, tools=[WEATHER_TOOL])
    assert dumps(via) == dumps(direct)

    calls = assemble_tool_calls(via)
    assert calls == assemble_tool_calls(direct)
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == TOOL_ARGUMENTS
    finishes = [c.choices[0].finish_reason for c in via if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]

    # The same call as a single reply carries the same tool call.
    single = pair.via.chat.completions.create(
        model="mock-gpt", messages=MESSAGES, tools=[WEATHER_TOOL]
    )
    [call] = single.choices[0].message.tool_calls
    assert {"id": call.id, "name": call.function.name, "arguments": call.function.arguments} == (
        calls[0]
    )


def test_stream_helper_with_tool_call_matches_direct(pair: Pair):
    def run(client: openai.OpenAI):
        with client.chat.completions.stream(
            model="mock-gpt", messages=MESSAGES, tools=[WEATHER_TOOL]
        ) as stream:
            events = [event.type for event in stream]
            return events, stream.get_final_completion()

    direct_events, direct_final = run(pair.direct)
    via_events, via_final = run(pair.via)
    assert via_events == direct_events
    assert "tool_calls.function.arguments.done" in via_events
    assert via_final.model_dump() == direct_final.model_dump()
    [call] = via_final.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == TOOL_ARGUMENTS


def test_stream_helper_with_text_matches_direct(pair: Pair):
    def run(client: openai.OpenAI):
        with client.chat.completions.stream(model="mock-gpt", messages=MESSAGES) as stream:
            done = [event.content for event in stream if event.type == "content.done"]
            return done, stream.get_final_completion()

    direct_done, direct_final = run(pair.direct)
    via_done, via_final = run(pair.via)
    assert via_final.model_dump() == direct_final.model_dump()
    assert via_done == direct_done == [via_final.choices[0].message.content]


# --- Embeddings, completions, models ---------------------------------------------------------


@pytest.mark.parametrize("encoding_format", [None, "float", "base64"])
def test_embeddings_match_direct(pair: Pair, encoding_format):
    # Without `encoding_format` the SDK asks for base64 and decodes it to floats itself.
    params = {"model": "mock-embed", "input": ["alpha", "beta gamma"]}
    if encoding_format is not None:
        params["encoding_format"] = encoding_format
    direct = pair.direct.embeddings.with_raw_response.create(**params)
    via = pair.via.embeddings.with_raw_response.create(**params)

    assert via.http_response.content == direct.http_response.content
    result = via.parse()
    # An explicit base64 answer keeps `embedding` a string where the type says list[float]:
    # pydantic would warn about that on dump.
    assert result.model_dump(warnings=False) == direct.parse().model_dump(warnings=False)
    assert [item.index for item in result.data] == [0, 1]
    if encoding_format == "base64":
        assert all(isinstance(item.embedding, str) for item in result.data)
    else:
        vector = result.data[0].embedding
        assert vector and all(isinstance(x, float) for x in vector)
        assert vector != result.data[1].embedding


def test_completions_match_direct(pair: Pair):
    params = {"model": "mock-gpt", "prompt": "Once upon a time"}
    direct = pair.direct.completions.with_raw_response.create(**params)
    via = pair.via.completions.with_raw_response.create(**params)
    assert via.http_response.content == direct.http_response.content
    completion = via.parse()
    assert completion.model_dump() == direct.parse().model_dump()
    assert completion.choices[0].text

    direct_chunks = list(
        pair.direct.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
    )
    via_chunks = list(
        pair.via.completions.create(**params, stream=True, stream_options={"include_usage": True})
    )
    assert dumps(via_chunks) == dumps(direct_chunks)
    assert via_chunks[-1].usage is not None


def test_models_list_contains_mock_models(pair: Pair):
    direct = {model.id: model.model_dump() for model in pair.direct.models.list()}
    via = {model.id: model.model_dump() for model in pair.via.models.list()}
    assert {"mock-gpt", "mock-embed"} <= set(via)
    for model_id, model in direct.items():
        assert via[model_id] == model


def test_models_list_with_pattern_routing(routed: Routed):
    ids = [model.id for model in routed.via.models.list()]
    assert {"mock-gpt", "mock-embed"} <= set(ids)
    assert len(ids) == len(set(ids))


# --- Errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_not_found(routed: Routed, stream: bool):
    with pytest.raises(openai.NotFoundError) as caught:
        routed.via.chat.completions.create(
            model="gpt-no-such-model", messages=MESSAGES, stream=stream
        )
    error = caught.value
    assert error.status_code == 404
    assert error.code == "model_not_found"
    assert error.type == "invalid_request_error"
    assert error.param == "model"
    assert "gpt-no-such-model" in error.message


def test_unknown_model_is_not_found_for_embeddings(routed: Routed):
    with pytest.raises(openai.NotFoundError) as caught:
        routed.via.embeddings.create(model="text-embedding-nope", input="x")
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_500_is_502_upstream_error(routed: Routed, stream: bool):
    with pytest.raises(openai.APIStatusError) as caught:
        routed.via.chat.completions.create(model="mock-fault-500", messages=MESSAGES, stream=stream)
    error = caught.value
    assert isinstance(error, openai.InternalServerError)
    assert error.status_code == 502
    assert error.code == "upstream_error"
    assert error.type == "upstream_error"
    assert error.response.headers["content-type"].startswith("application/json")


def test_upstream_400_passes_through_exactly(routed: Routed):
    errors = []
    for client in (routed.direct, routed.via):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="mock-fault-400", messages=MESSAGES)
        errors.append(caught.value)
    direct, via = errors
    assert via.status_code == direct.status_code == 400
    assert via.body == direct.body
    assert via.response.content == direct.response.content
    assert (via.message, via.code, via.type, via.param) == (
        direct.message,
        direct.code,
        direct.type,
        direct.param,
    )


def test_upstream_429_is_rate_limit_error(routed: Routed):
    errors = []
    for client in (routed.direct, routed.via):
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="mock-fault-429", messages=MESSAGES)
        errors.append(caught.value)
    direct, via = errors
    assert via.status_code == 429
    assert via.code == "rate_limit_exceeded"
    assert via.body == direct.body
    assert via.response.headers.get("retry-after") == "7"


def test_midstream_failure_raises_api_error_after_whole_chunks(routed: Routed):
    stream = routed.via.chat.completions.create(
        model="mock-fault-midstream", messages=MESSAGES, stream=True
    )
    chunks = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            chunks.append(chunk)
    error = caught.value
    # An in-band error event, not a broken connection and not an HTTP status.
    assert not isinstance(error, (openai.APIConnectionError, openai.APIStatusError))
    assert error.code == "upstream_reset"
    assert error.type == "upstream_error"
    # The mock sends three whole events and half of a fourth: the half must not surface.
    assert len(chunks) == 3
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == "mock-fault-midstream"
        assert chunk.model_extra["x_mock_extra"] == MOCK_EXTRA
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({chunk.id for chunk in chunks}) == 1


@pytest.mark.parametrize(
    ("model", "stream", "status", "code"),
    [
        ("mock-fault-503-html", False, 502, "upstream_error"),
        ("mock-fault-nonjson", False, 502, "upstream_bad_response"),
        ("mock-fault-badjson", False, 502, "upstream_bad_response"),
        ("mock-fault-reset", False, 502, "upstream_reset"),
        ("mock-fault-reset", True, 502, "upstream_reset"),
    ],
)
def test_broken_upstream_answers_become_openai_errors(
    routed: Routed, model: str, stream: bool, status: int, code: str
):
    """Where the SDK talking to the upstream directly would choke (HTML, truncated JSON, a reset
    connection), through the gateway it gets an ordinary OpenAI error."""
    with pytest.raises(openai.InternalServerError) as caught:
        routed.via.chat.completions.create(model=model, messages=MESSAGES, stream=stream)
    assert caught.value.status_code == status
    assert caught.value.code == code
    assert caught.value.type == "upstream_error"


def test_completions_midstream_failure_raises_api_error(routed: Routed):
    stream = routed.via.completions.create(model="mock-fault-midstream", prompt="x", stream=True)
    chunks = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            chunks.append(chunk)
    assert not isinstance(caught.value, (openai.APIConnectionError, openai.APIStatusError))
    assert caught.value.code == "upstream_reset"
    assert len(chunks) == 3
    assert all(chunk.object == "text_completion" for chunk in chunks)


def test_body_over_limit_is_413(launcher: Launcher):
    mock = launcher.mock()
    config = launcher.config_file(
        f"""\
listen: 127.0.0.1:0
upstreams:
  - name: mock
    url: "{mock.base_url}"
    models: ["mock-*"]
limits:
  max_body_bytes: 2048
"""
    )
    gateway = launcher.gateway(config=config)
    with make_client(gateway.base_url) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="mock-gpt", messages=[{"role": "user", "content": "x " * 5000}]
            )
        assert caught.value.status_code == 413
        assert caught.value.code == "request_too_large"
        # Just under the limit still passes. (Natural text: a run of one repeated token is
        # itself a known attack pattern, which the guard's default policy denies.)
        small = client.chat.completions.create(
            model="mock-gpt",
            messages=[
                {"role": "user", "content": "The gate opened at dawn and the guards changed. " * 20}
            ],
        )
        assert small.choices[0].message.content


def test_upstream_timeout_is_504(launcher: Launcher):
    mock = launcher.mock()
    config = launcher.config_file(
        f"""\
listen: 127.0.0.1:0
upstreams:
  - name: mock
    url: "{mock.base_url}"
    models: ["mock-*"]
    first_byte_timeout_ms: 300
"""
    )
    gateway = launcher.gateway(config=config)
    with make_client(gateway.base_url) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="mock-fault-hang", messages=MESSAGES)
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"model":"mock-gpt","messages":[', b"\xff\xfe"], ids=repr
)
def test_malformed_json_is_400_invalid_json(routed: Routed, body: bytes):
    status, headers, content = raw_post(routed.gateway.addr, "/v1/chat/completions", body)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    error = json.loads(content)["error"]
    assert error["code"] == "invalid_json"
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "code", "param"}


# --- Credentials and logs --------------------------------------------------------------------

PROMPT_MARKER = "zebra-quartz-7731 is the secret prompt"


def test_client_key_and_prompt_never_reach_logs(launcher: Launcher):
    mock = launcher.mock()
    config = launcher.config_file(
        f"""\
listen: 127.0.0.1:0
upstreams:
  - name: mock
    url: "{mock.base_url}"
    models: ["mock-*"]
    api_key_env: MOCK_KEY
"""
    )
    gateway = launcher.gateway(config=config, env={"MOCK_KEY": "sk-upstream"})
    messages = [{"role": "user", "content": PROMPT_MARKER}]
    with make_client(gateway.base_url, api_key="client-secret") as client:
        completion = client.chat.completions.create(model="mock-gpt", messages=messages)
        assert completion.choices[0].message.content
        chunks = list(
            client.chat.completions.create(model="mock-gpt", messages=messages, stream=True)
        )
        assert chunks[-1].choices[0].finish_reason == "stop"
        embedding = client.embeddings.create(model="mock-embed", input=PROMPT_MARKER)
        assert embedding.data[0].embedding
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="mock-fault-400", messages=messages)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="not-routed", messages=messages)

    assert gateway.stop() == 0
    lines = gateway.log_lines()
    exchanges = [r for r in gateway.log_records() if r.get("message") == "exchange"]
    assert len(exchanges) == 5, "every exchange is logged (else this test proves nothing)"
    for secret in ("client-secret", "sk-upstream", "zebra-quartz"):
        leaking = [line for line in lines if secret in line]
        assert not leaking, f"{secret!r} appears in the gateway log: {leaking}"


class RecordingUpstream:
    """A minimal upstream in this process that records each request (path, headers, body) and
    answers every POST with one fixed chat completion."""

    BODY = json.dumps(
        {
            "id": "chatcmpl-recorded",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "mock-gpt",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "recorded"},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()

    def __init__(self):
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                recorder.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": self.rfile.read(length),
                    }
                )
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(recorder.BODY)))
                self.end_headers()
                self.wfile.write(recorder.BODY)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def recording_upstream() -> Iterator[RecordingUpstream]:
    with RecordingUpstream() as upstream:
        yield upstream


def test_upstream_gets_its_own_key_not_the_clients(
    launcher: Launcher, recording_upstream: RecordingUpstream
):
    config = launcher.config_file(
        f"""\
listen: 127.0.0.1:0
upstreams:
  - name: recorder
    url: "{recording_upstream.base_url}"
    models: ["mock-*"]
    api_key_env: MOCK_KEY
"""
    )
    gateway = launcher.gateway(config=config, env={"MOCK_KEY": "sk-upstream"})
    with make_client(gateway.base_url, api_key="client-secret") as client:
        completion = client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    assert completion.choices[0].message.content == "recorded"
    [request] = recording_upstream.requests
    headers = request["headers"]
    assert headers["authorization"] == "Bearer sk-upstream"
    assert not [name for name, value in headers.items() if "client-secret" in value]


def test_request_reaches_upstream_unchanged(
    launcher: Launcher, recording_upstream: RecordingUpstream
):
    """Fields the gateway does not know, and the query string, reach the upstream as sent."""
    gateway = launcher.gateway(upstream=[recording_upstream.base_url])
    sent: list[bytes] = []

    def remember(request):
        sent.append(request.read())

    http_client = openai.DefaultHttpxClient(trust_env=False, event_hooks={"request": [remember]})
    with openai.OpenAI(
        base_url=gateway.base_url, api_key="test", max_retries=0, http_client=http_client
    ) as client:
        client.chat.completions.create(
            model="mock-gpt",
            messages=MESSAGES,
            temperature=0.25,
            extra_body={"x_vendor_option": {"nested": [1, 2.5, None, "é"]}},
            extra_query={"api-version": "2024-01-01"},
        )
    [request] = recording_upstream.requests
    assert request["path"] == "/v1/chat/completions?api-version=2024-01-01"
    assert json.loads(request["body"]) == json.loads(sent[0])
    assert json.loads(request["body"])["x_vendor_option"] == {"nested": [1, 2.5, None, "é"]}
    assert request["body"] == sent[0]
