"""A STAND-IN for a cloud provider's OpenAI-compatible API (no real
provider can be reached from the tests, nor paid for). It answers POST
/v1/chat/completions with a fixed reply naming the model it was asked for,
and appends each request's path, Authorization header and JSON body to the
file named by its first argument. With a second argument, the reply is
read from that JSON file at each request instead ({"message": {...},
"usage": {...}}): a test can make it ask for tool calls or report token
counts (or, as a scripted local engine, reply with text a real model
cannot be made to write on demand: a looping or empty reply). GET
/v1/models lists one model, so engine detection finds it. POST
/v1/embeddings answers each input with an 8-dimensional
vector derived from its words (texts sharing words point alike), so memory
can embed through it. Prints its port, then serves until killed."""
import hashlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = sys.argv[1]
REPLY = sys.argv[2] if len(sys.argv) > 2 else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        with open(LOG, "a") as f:
            f.write(json.dumps({"path": self.path, "authorization": self.headers.get("Authorization"),
                                "body": body}) + "\n")
        if self.path.endswith("/embeddings"):
            return self.embeddings(body)
        message = {"role": "assistant", "content": "from the cloud stand-in"}
        usage = None
        if REPLY:
            with open(REPLY) as f:
                r = json.load(f)
            message, usage = r.get("message", message), r.get("usage")
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        reply = {"id": "standin-1", "object": "chat.completion", "created": 0,
                 "model": body.get("model"),
                 "choices": [{"index": 0, "finish_reason": finish, "message": message}]}
        if usage:
            reply["usage"] = usage
        out = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self):
        out = json.dumps({"object": "list",
                          "data": [{"id": "standin-model", "object": "model"}]}).encode()
        self.send_response(200 if self.path.endswith("/models") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def embeddings(self, body):
        inputs = body.get("input") or []
        if isinstance(inputs, str):
            inputs = [inputs]
        data = []
        for i, text in enumerate(inputs):
            v = [0.0] * 8
            for w in str(text).lower().split():
                v[hashlib.sha256(w.encode()).digest()[0] % 8] += 1.0
            v[0] += 0.01
            data.append({"object": "embedding", "index": i, "embedding": v})
        out = json.dumps({"object": "list", "data": data, "model": body.get("model")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
