"""The official `openai` Python client against Cowork's local API, for
tests/tests/gateway.rs (and benches/models.rs).

  gateway_client.py check BASE_URL KEY CHAT_MODEL EMBED_MODEL
      list, chat, stream, completions and embeddings with the right key;
      the wrong key (Bearer and X-Api-Key) and an unknown model; a foreign
      Host header on every path; a CORS preflight. Prints one JSON object.
  gateway_client.py ttft ENGINE_URL GATEWAY_URL KEY MODEL N
      N streamed chats each way, alternating one by one (the engine's own
      /v1 without a key, the gateway's with KEY); prints {"direct": [...],
      "gateway": [...]}: milliseconds to the first chunk."""
import http.client
import json
import sys
import time
import urllib.parse

import openai


def raw(base, method, path, headers, body=None):
    u = urllib.parse.urlparse(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def check(base, key, chat_model, embed_model):
    out = {}
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
    out["models"] = [m.id for m in client.models.list().data]
    msg = [{"role": "user", "content": "Say the word hello."}]
    r = client.chat.completions.create(model=chat_model, messages=msg, max_tokens=16, temperature=0)
    out["chat"] = {"content": r.choices[0].message.content, "model": r.model,
                   "finish": r.choices[0].finish_reason}
    chunks = []
    for ch in client.chat.completions.create(model=chat_model, messages=msg, max_tokens=16,
                                             temperature=0, stream=True):
        if ch.choices and ch.choices[0].delta.content:
            chunks.append(ch.choices[0].delta.content)
    out["stream"] = {"chunks": len(chunks), "text": "".join(chunks)}
    c = client.completions.create(model=chat_model, prompt="The sky is", max_tokens=8, temperature=0)
    out["completion"] = c.choices[0].text
    e = client.embeddings.create(model=embed_model, input=["hello world", "goodbye"])
    out["embeddings"] = [len(d.embedding) for d in e.data]

    def status_of(fn):
        try:
            fn()
            return 200
        except openai.APIStatusError as ex:
            return ex.status_code

    bad = openai.OpenAI(base_url=base, api_key="wrong-" + key, max_retries=0)
    out["wrong_key"] = status_of(lambda: bad.models.list())
    out["wrong_key_chat"] = status_of(
        lambda: bad.chat.completions.create(model=chat_model, messages=msg, max_tokens=4))
    out["unknown_model"] = status_of(
        lambda: client.chat.completions.create(model="no-such-model", messages=msg, max_tokens=4))
    # X-Api-Key instead of Bearer.
    s, _, _ = raw(base, "GET", "/v1/models", {"X-Api-Key": key})
    out["x_api_key"] = s
    s, _, _ = raw(base, "GET", "/v1/models", {"X-Api-Key": "nope"})
    out["x_api_key_wrong"] = s
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its
    # own Host; every path refuses it, the docs too, even with the key.
    foreign = {}
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
                         ("POST", "/v1/embeddings"), ("GET", "/openapi.json"), ("GET", "/"),
                         ("OPTIONS", "/v1/models"), ("GET", "/nope")]:
        body = json.dumps({"model": chat_model, "messages": msg}) if method == "POST" else None
        s, _, _ = raw(base, method, path, {"Host": "evil.example:%d" % urllib.parse.urlparse(base).port,
                                          "Authorization": "Bearer " + key,
                                          "Content-Type": "application/json"}, body)
        foreign[f"{method} {path}"] = s
    out["foreign_host"] = foreign
    s, h, _ = raw(base, "OPTIONS", "/v1/chat/completions",
                  {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "authorization, content-type"})
    out["preflight"] = {"status": s, "allow_origin": h.get("access-control-allow-origin"),
                        "allow_methods": h.get("access-control-allow-methods"),
                        "allow_headers": h.get("access-control-allow-headers")}
    # The docs tell a page that Cowork runs here: they need the key too.
    out["docs_without_key"] = {p: raw(base, "GET", p, {})[0] for p in ["/openapi.json", "/", "/docs"]}
    s, h, doc = raw(base, "GET", "/openapi.json", {"Authorization": "Bearer " + key})
    out["openapi"] = {"status": s, "paths": sorted(json.loads(doc)["paths"]) if s == 200 else []}
    print(json.dumps(out))


def first_chunk_ms(client, model):
    t = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count to three."}],
        max_tokens=4, temperature=0, stream=True)
    first = None
    for _ in stream:
        if first is None:
            first = (time.perf_counter() - t) * 1000
    return first


def ttft(engine, gateway, key, model, n):
    direct = openai.OpenAI(base_url=engine, api_key="unused", max_retries=0, timeout=120)
    via = openai.OpenAI(base_url=gateway, api_key=key, max_retries=0, timeout=120)
    out = {"direct": [], "gateway": []}
    for _ in range(2):  # warm both
        first_chunk_ms(direct, model)
        first_chunk_ms(via, model)
    for _ in range(n):
        out["direct"].append(first_chunk_ms(direct, model))
        out["gateway"].append(first_chunk_ms(via, model))
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(*sys.argv[2:6])
    else:
        ttft(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
