"""A STAND-IN for Ollama (Ollama itself cannot run here): serves only
GET /api/tags in Ollama's wire format. Prints its port, then serves until
killed."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

MODELS = sys.argv[1:] or ["llama3.2:3b"]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/api/tags":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(
            {"models": [{"name": m, "model": m, "size": 1} for m in MODELS]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
