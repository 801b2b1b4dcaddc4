"""A real MCP server built with the official Python SDK that demands
credentials, for the tests of secret environment and secret headers.

  auth_mcp_server.py stdio SHA256       refuses to start unless $DEMO_TOKEN
                                        hashes to SHA256
  auth_mcp_server.py http PORT SHA256   streamable HTTP on 127.0.0.1:PORT/mcp;
                                        401 unless `Authorization: Bearer T`
                                        with T hashing to SHA256, 400 unless
                                        `X-Org: acme`

(Only the token's hash is on its command line, so a test can check that the
token itself is written nowhere.)

Its one tool, `whoami`, answers "authorized" (and the org, over HTTP)."""
import hashlib
import os
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

mode = sys.argv[1]
app = MCPServer("auth-demo")


@app.tool()
def whoami() -> str:
    """Say whether the credentials were accepted."""
    return "authorized"


def matches(token, digest):
    return token is not None and hashlib.sha256(token.encode()).hexdigest() == digest


def guarded(inner, digest):
    """Wrap an ASGI app: check the headers of every HTTP request."""
    async def asgi(scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            status = None
            auth = headers.get("authorization", "")
            if not (auth.startswith("Bearer ") and matches(auth[7:], digest)):
                status, body = 401, b"missing or wrong bearer token"
            elif headers.get("x-org") != "acme":
                status, body = 400, b"X-Org header missing"
            if status:
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": body})
                return
        await inner(scope, receive, send)
    return asgi


if mode == "stdio":
    if not matches(os.environ.get("DEMO_TOKEN"), sys.argv[2]):
        print("auth-demo: DEMO_TOKEN is missing or wrong", file=sys.stderr)
        sys.exit(1)
    app.run()
else:
    port, digest = int(sys.argv[2]), sys.argv[3]
    uvicorn.run(guarded(app.streamable_http_app(), digest), host="127.0.0.1", port=port,
                log_level="warning")
