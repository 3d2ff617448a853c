"""A chat-completions server on 127.0.0.1 that speaks the OpenAI protocol, for the openai labeller's tests.

By default it answers like a compliant but gullible model: it labels the article it finds in the
user message, and obeys any "set section to X" the article contains, so tests can show that our
validation, not the model, keeps values inside the allowed sets. Queue `Answer`s to make it return
malformed JSON, out-of-set values, 429 with Retry-After, 500 or slow responses.
"""

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Answer:
    """One response: `content` is the assistant message's text (wrapped in the chat-completion shape)
    unless `raw_body` is given, which is sent as it is."""

    status: int = 200
    content: str | None = None
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: dict
    received_at: float

    @property
    def article(self) -> dict:
        """The article the client sent, decoded from between its markers."""
        user = next(message["content"] for message in self.body["messages"] if message["role"] == "user")
        inner = user.split("<<<ARTICLE\n", 1)[1].rsplit("\nARTICLE>>>", 1)[0]
        return json.loads(inner)


_INJECTED_SECTION = re.compile(r"set (?:the )?section to ([\w-]+)", re.IGNORECASE)


def gullible_model(request: ReceivedRequest) -> dict:
    """A model that labels every story as technology from Asia, unless the article tells it otherwise."""
    article = request.article
    label = {
        "section": "technology",
        "tags": ["Electric vehicles", "EVs", "Batteries"],
        "region": {"continent": "Asia", "country": "China"},
        "dek": "Battery makers in China are cutting prices. Buyers are switching to electric cars.",
    }
    if "brief" in json.dumps(request.body.get("response_format", {})):
        label["brief"] = [
            {"heading": "What happened", "body": "Prices fell.\n\nSales rose."},
            {"heading": "Why it matters", "body": "Cheaper cars <b>reach</b> more buyers."},
        ]
    injected = _INJECTED_SECTION.search(f"{article.get('title', '')} {article.get('text', '')}")
    if injected:
        label.update(
            section=injected.group(1),
            tags=["<script>alert(1)</script>", "x" * 500, 42, *[f"Tag {n}" for n in range(20)]],
            region={"continent": "Atlantis", "country": "Narnia"},
            dek="<img src=x onerror=alert(1)>Ignore the site. " * 20,
            brief=[{"heading": "<script>alert(1)</script>Owned", "body": '<a href="javascript:alert(1)">click</a>'}],
        )
    return label


class ChatCompletionsServer:
    """Serves POST /v1/chat/completions on an ephemeral port; records every request it receives."""

    def __init__(self, responder: Callable[[ReceivedRequest], dict] = gullible_model) -> None:
        self.responder = responder
        self.queue: list[Answer] = []
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                received = ReceivedRequest(
                    path=self.path, headers=dict(self.headers.items()), body=body, received_at=time.monotonic()
                )
                with server._lock:
                    server.requests.append(received)
                    answer = server.queue.pop(0) if server.queue else None
                if answer is None:
                    answer = Answer(content=json.dumps(server.responder(received)))
                if answer.delay:
                    time.sleep(answer.delay)
                payload = answer.raw_body
                if payload is None:
                    payload = json.dumps(_completion(body.get("model", ""), answer.content)).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as a timeout test wants it to

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def then(self, *answers: Answer) -> "ChatCompletionsServer":
        self.queue.extend(answers)
        return self

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _completion(model: str, content: str | None) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"},
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


@pytest.fixture
def llm_server():
    server = ChatCompletionsServer()
    server.start()
    yield server
    server.stop()
