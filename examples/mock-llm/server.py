"""A local stand-in for an OpenAI-compatible LLM API, for the demo and tests.

  python3 examples/mock-llm/server.py [--port N]

Prints the port on its first line of stdout, then serves
POST /v1/chat/completions. The bearer key must equal $MOCK_LLM_KEY (when
set): a wrong or missing key gets 401, as a real provider would answer.
"""
import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 1 << 20:
            return self.reply(413, {"error": "too large"})
        raw = self.rfile.read(n)
        want = os.environ.get("MOCK_LLM_KEY")
        if want and self.headers.get("Authorization") != f"Bearer {want}":
            return self.reply(401, {"error": {"message": "invalid api key"}})
        if self.path != "/v1/chat/completions":
            return self.reply(404, {"error": "not found"})
        try:
            req = json.loads(raw)
            prompt = req["messages"][-1]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return self.reply(400, {"error": "bad request"})
        text = ("- Each run gets a fresh sandbox that holds only what it was granted.\n"
                "- Every request leaves through an egress proxy with a domain policy.\n"
                "- The run leaves a record of exactly which bytes ran.")
        self.reply(200, {
            "id": "chatcmpl-demo",
            "object": "chat.completion",
            "model": req.get("model", "demo-1"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": len(prompt.split()),
                      "completion_tokens": len(text.split())},
        })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(srv.server_address[1], flush=True)
    sys.stdout.close()
    srv.serve_forever()


if __name__ == "__main__":
    main()
