"""An OpenAI-compatible chat server on 127.0.0.1 whose behaviour depends on the model name.

`good*` answers with a cited draft, `slow*` sleeps past any sane timeout, `broken*`
answers 500, `limited*` answers 429, `judge*` answers as a faithfulness judge (see `judge_answer`).
Every request body is kept for assertions.
`set_mode(model, "hang" | "empty" | "<HTTP status>" | None)` overrides that for one model while the server runs
(a primary that dies and comes back); a hanging request is released when the server stops.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = (
    "# PETIÇÃO INICIAL\n\n## Do Direito\n\nO fornecedor de serviços responde, independentemente da existência "
    "de culpa, pela reparação dos danos causados aos consumidores por defeitos relativos à prestação dos "
    "serviços [1]. Segundo a Súmula 999 do STF, o banco sempre responde em dobro [7].\n\n"
    "O autor {name} pede a reparação.\n"
)


def judge_answer(model: str, prompt: str) -> str:
    """A faithfulness judge (harvey.drafting.judge prompt layout): "supported" when every word of the claim after
    AFIRMAÇÃO: occurs in the FONTES: text, else "unsupported"; `judge-garbled*` answers prose instead."""
    if model.startswith("judge-garbled"):
        return "Acho que a afirmação está correta, mas depende."
    sources, _, claim = prompt.partition("AFIRMAÇÃO:")
    known = set(re.findall(r"\w+", sources.lower()))
    missing = [w for w in re.findall(r"\w+", claim.lower()) if w not in known]
    verdict = "unsupported" if missing else "supported"
    return json.dumps({"verdict": verdict, "reason": f"fora das fontes: {' '.join(missing)}" if missing else "ok"})


def _chat(model: str, content: str) -> dict:
    message = {"role": "assistant", "content": content}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140},
    }


class FakeOpenAI:
    def __init__(self, slow_seconds: float = 5.0):
        self.requests: list[dict] = []
        self.slow_seconds = slow_seconds
        self.modes: dict[str, str] = {}
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                model = body.get("model", "")
                mode = outer.modes.get(model)
                if mode == "hang":
                    outer.stopping.wait(600)
                    return None
                if mode == "empty":  # what a content-filtered completion looks like: 200, no content
                    return self._send(200, _chat(model, ""))
                if mode is not None:
                    return self._send(int(mode), {"error": {"message": f"fake status {mode}", "type": "fake"}})
                if model.startswith("slow"):
                    time.sleep(outer.slow_seconds)
                if model.startswith("broken"):
                    return self._send(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
                if model.startswith("limited"):
                    return self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}})
                prompt = body["messages"][-1]["content"]
                if model.startswith("judge"):
                    return self._send(200, _chat(model, judge_answer(model, prompt)))
                name = "PESSOA_1" if "PESSOA_1" in prompt else "desconhecido"
                return self._send(
                    200,
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": ANSWER.format(name=name)},
                            }
                        ],
                        "usage": {"prompt_tokens": 120, "completion_tokens": 60, "total_tokens": 180},
                    },
                )

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def models_called(self) -> list[str]:
        return [r["model"] for r in self.requests]

    def set_mode(self, model: str, mode: str | None) -> None:
        """Make `model` (the name without provider prefix) hang or answer a status ("500"); None restores it."""
        if mode is None:
            self.modes.pop(model, None)
        else:
            self.modes[model] = mode
