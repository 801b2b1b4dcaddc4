"""A STAND-IN for Ollama (Ollama itself cannot run here). It speaks the
parts of Ollama's wire format the suite uses: GET /api/tags, and POST
/api/chat streaming NDJSON — it answers "You said: <last user message>"
word by word (STANDIN_DELAY_MS between words) and appends each request's
JSON to STANDIN_LOG when set, and a {"event": "client_gone", "sent": N}
line when the client closes the connection mid-answer. With STANDIN_SHOW
naming a JSON file {"model": NAME, "size": BYTES, "model_info": {...}} it
also answers POST /api/show for that model (and lists it in /api/tags with
that size), the way Ollama reports a model's GGUF metadata. POST
/api/embed answers each input with an 8-dimensional vector derived from its
words (texts sharing words point alike), as Ollama's embedding endpoint
does for an embedding model. Prints its port, then serves until killed."""
import hashlib
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = sys.argv[1:] or ["llama3.2:3b"]
DELAY = int(os.environ.get("STANDIN_DELAY_MS", "0")) / 1000.0
LOG = os.environ.get("STANDIN_LOG")
SHOW = None
if os.environ.get("STANDIN_SHOW"):
    with open(os.environ["STANDIN_SHOW"]) as f:
        SHOW = json.load(f)
    MODELS.append(SHOW["model"])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/api/tags":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = lambda m: SHOW["size"] if SHOW and m == SHOW["model"] else 1
        self.send_json({"models": [{"name": m, "model": m, "size": size(m)} for m in MODELS]})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(length) or b"{}")
        if LOG:
            with open(LOG, "a") as f:
                f.write(json.dumps(req) + "\n")
        if self.path == "/api/show":
            if SHOW and req.get("model") == SHOW["model"]:
                self.send_json({"model_info": SHOW["model_info"], "details": {"format": "gguf"}})
            else:
                body = json.dumps({"error": f"model '{req.get('model')}' not found"}).encode()
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            return
        if self.path == "/api/embed":
            inputs = req.get("input") or []
            if isinstance(inputs, str):
                inputs = [inputs]
            vectors = []
            for text in inputs:
                v = [0.0] * 8
                for w in str(text).lower().split():
                    v[hashlib.sha256(w.encode()).digest()[0] % 8] += 1.0
                v[0] += 0.01
                vectors.append(v)
            self.send_json({"model": req.get("model"), "embeddings": vectors})
            return
        if self.path == "/api/generate" and req.get("keep_alive") == 0:
            # As Ollama answers an unload request.
            self.send_json({"model": req.get("model"), "response": "", "done": True,
                            "done_reason": "unload"})
            return
        if self.path != "/api/chat":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        last = [m for m in req.get("messages", []) if m.get("role") == "user"]
        words = ("You said: " + (last[-1]["content"] if last else "")).split(" ")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj):
            data = (json.dumps(obj) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        for i, w in enumerate(words):
            text = w if i == 0 else " " + w
            try:
                chunk({"model": req.get("model"), "message": {"role": "assistant", "content": text}, "done": False})
            except (BrokenPipeError, ConnectionResetError):
                if LOG:
                    with open(LOG, "a") as f:
                        f.write(json.dumps({"event": "client_gone", "sent": i}) + "\n")
                return
            time.sleep(DELAY)
        chunk({"model": req.get("model"), "message": {"role": "assistant", "content": ""},
               "done": True, "done_reason": "stop", "prompt_eval_count": 11, "eval_count": len(words)})
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
