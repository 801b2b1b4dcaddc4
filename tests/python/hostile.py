"""Hostile peers for tests/tests/faults: each does one thing a broken or
malicious engine, download server or MCP server can do.

  hostile.py redirect PORT   an OpenAI-style engine (GET /v1/models lists
                             "hostile-model") whose every POST answers
                             307 to http://127.0.0.1:PORT/…
  hostile.py endless-line    the same engine; POST /v1/chat/completions
                             streams one SSE line that never ends
  hostile.py endless-event   the same, streaming short `data:` lines of
                             one event that never ends (no blank line)
  hostile.py embed-hang      an OpenAI-style engine (GET /v1/models lists
                             "hostile-embed", an embedding model) that
                             accepts every POST and never answers
  hostile.py embed-refuse-long  an OpenAI-style embedding engine
                             ("refusing-embed") that answers HTTP 400 to a
                             request with any input over 60 characters
                             (as llama-server refuses one over its tokens)
  hostile.py zeros           GET /endless: chunked zeros without end;
                             GET /huge: Content-Length 1 TiB, then zeros
  hostile.py mcp-env         a stdio MCP server: tool "env" returns its
                             whole environment as JSON
  hostile.py mcp-flood       a stdio MCP server: tool "flood" writes 1 GiB
                             without a newline, then waits

HTTP modes print their port, then serve until killed."""
import hashlib
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MIB = b"x" * (1 << 20)
ZEROS = b"\0" * (1 << 20)


class Engine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = ""
    target = 0

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.mode == "zeros":
            return self.zeros()
        model = {"embed-hang": "hostile-embed", "embed-refuse-long": "refusing-embed"}.get(
            self.mode, "hostile-model")
        body = json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.mode == "embed-refuse-long":
            inputs = json.loads(body or b"{}").get("input") or []
            if any(len(t) > 60 for t in inputs):
                return self.reply(400, {"error": {"message": "input is too large to process"}})
            data = []
            for i, text in enumerate(inputs):
                v = [0.01] + [0.0] * 7
                for w in text.lower().split():
                    v[hashlib.sha256(w.encode()).digest()[0] % 8] += 1.0
                data.append({"index": i, "embedding": v})
            return self.reply(200, {"data": data})
        if self.mode == "embed-hang":
            # Accepted, never answered: the caller's own deadline must end it.
            while True:
                time.sleep(3600)
        if self.mode == "redirect":
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{self.target}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        # endless-line: one SSE data line that never ends; endless-event:
        # one event of short data lines that never ends.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        piece = MIB if self.mode == "endless-line" else b"data: x\n" * (1 << 16)
        try:
            if self.mode == "endless-line":
                self.chunk(b"data: ")
            while True:
                self.chunk(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def reply(self, status, obj):
        out = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def zeros(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        try:
            if self.path.startswith("/huge"):
                self.send_header("Content-Length", str(1 << 40))
                self.end_headers()
                while True:
                    self.wfile.write(ZEROS)
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while True:
                    self.chunk(ZEROS)
        except (BrokenPipeError, ConnectionResetError):
            pass


def serve_http(mode, target=0):
    Engine.mode = mode
    Engine.target = target
    server = ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def reply(msg_id, result):
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}) + "\n")
    sys.stdout.flush()


def serve_mcp(mode):
    tool = "env" if mode == "mcp-env" else "flood"
    for line in sys.stdin:
        msg = json.loads(line)
        method, msg_id = msg.get("method"), msg.get("id")
        if msg_id is None:
            continue  # notifications
        if method == "initialize":
            reply(msg_id, {"protocolVersion": msg["params"].get("protocolVersion", "2025-06-18"),
                           "capabilities": {"tools": {}},
                           "serverInfo": {"name": "hostile", "version": "1"}})
        elif method == "tools/list":
            reply(msg_id, {"tools": [{"name": tool, "description": "hostile",
                                      "inputSchema": {"type": "object", "properties": {}}}]})
        elif method == "tools/call" and tool == "env":
            reply(msg_id, {"content": [{"type": "text", "text": json.dumps(dict(os.environ))}]})
        elif method == "tools/call":
            out = sys.stdout.buffer
            try:
                for _ in range(1024):
                    out.write(MIB)
                out.flush()
            except BrokenPipeError:
                return
            time.sleep(3600)
        else:
            reply(msg_id, {})


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode.startswith("mcp-"):
        serve_mcp(mode)
    else:
        serve_http(mode, int(sys.argv[2]) if len(sys.argv) > 2 else 0)
