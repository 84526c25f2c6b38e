#!/usr/bin/env python3
"""A stand-in for an OpenAI-compatible chat-completions endpoint, for tests.

    caption_server.py PORT_FILE LOG_FILE

Binds 127.0.0.1 on a free port, writes the port number to PORT_FILE (and
stdout) once it listens, and answers POST /v1/chat/completions. Every request
is logged to LOG_FILE as one JSON line (the key itself is never logged):

    {"n": 1, "path": "/v1/chat/completions", "status": 200, "auth_ok": true,
     "model": "...", "prompt": "...", "image_format": "jpeg", "width": 384,
     "height": 512, "image_bytes": 1234, "error": null}

Behaviour, from the environment:
    CAPTION_SERVER_KEY          the bearer key expected (required); any other
                                Authorization gets 401
    CAPTION_SERVER_TEXT         the caption returned (default "a photo of a thing")
    CAPTION_SERVER_ARRAY=1      return content as [{"type":"text","text":...}]
    CAPTION_SERVER_FAIL_FIRST=N the first N requests fail ...
    CAPTION_SERVER_FAIL_STATUS  ... with this status (default 429), with an
                                OpenAI-style {"error":{"message":...}} body
    CAPTION_SERVER_RETRY_AFTER  send this Retry-After header on failures

A request with a wrong shape (no model, no text part, no image_url, a data
URL that is not base64 of a JPEG, PNG or WebP image) gets 400 with the reason.
"""
import base64
import json
import os
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = os.environ.get("CAPTION_SERVER_KEY", "")
TEXT = os.environ.get("CAPTION_SERVER_TEXT", "a photo of a thing")
ARRAY = os.environ.get("CAPTION_SERVER_ARRAY") == "1"
FAIL_FIRST = int(os.environ.get("CAPTION_SERVER_FAIL_FIRST", "0"))
FAIL_STATUS = int(os.environ.get("CAPTION_SERVER_FAIL_STATUS", "429"))
RETRY_AFTER = os.environ.get("CAPTION_SERVER_RETRY_AFTER")

lock = threading.Lock()
count = 0


def image_facts(data):
    """(format, width, height) from the first bytes, or (None, None, None)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data[:3] == b"\xff\xd8\xff":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            seglen = struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return "jpeg", w, h
            i += 2 + seglen
        return "jpeg", None, None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = data[12:16]
        if kind == b"VP8 " and len(data) >= 30:
            w, h = struct.unpack("<HH", data[26:30])
            return "webp", w & 0x3FFF, h & 0x3FFF
        if kind == b"VP8L" and len(data) >= 25:
            b = int.from_bytes(data[21:25], "little")
            return "webp", (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
        if kind == b"VP8X" and len(data) >= 30:
            w = int.from_bytes(data[24:27], "little") + 1
            h = int.from_bytes(data[27:30], "little") + 1
            return "webp", w, h
        return "webp", None, None
    return None, None, None


def check_shape(req):
    """Return (error, facts) for a chat-completions vision request."""
    if not isinstance(req, dict):
        return "body is not a JSON object", {}
    facts = {"model": req.get("model")}
    if not isinstance(req.get("model"), str) or not req["model"]:
        return "no model", facts
    if not isinstance(req.get("max_tokens"), int):
        return "no max_tokens", facts
    msgs = req.get("messages")
    if not isinstance(msgs, list) or len(msgs) != 1 or msgs[0].get("role") != "user":
        return "messages must be one user message", facts
    content = msgs[0].get("content")
    if not isinstance(content, list):
        return "content must be a list of parts", facts
    texts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
    images = [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    if len(texts) != 1 or not texts[0].get("text"):
        return "no text part", facts
    facts["prompt"] = texts[0]["text"]
    if len(images) != 1:
        return "no image_url part", facts
    url = (images[0].get("image_url") or {}).get("url", "")
    prefix, sep, b64 = url.partition(";base64,")
    if not sep or not prefix.startswith("data:image/"):
        return "image_url is not a base64 data URL", facts
    try:
        data = base64.b64decode(b64, validate=True)
    except ValueError:
        return "image_url data is not base64", facts
    fmt, w, h = image_facts(data)
    facts.update(image_format=fmt, width=w, height=h, image_bytes=len(data),
                 mime=prefix[len("data:"):])
    if fmt is None:
        return "image_url data is no JPEG, PNG or WebP image", facts
    if prefix != "data:image/" + fmt:
        return "data URL says %s but the bytes are %s" % (prefix, fmt), facts
    return None, facts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, extra=None):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):
        global count
        with lock:
            count += 1
            n = count
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        entry = {"n": n, "path": self.path, "status": None, "error": None,
                 "auth_ok": self.headers.get("Authorization") == "Bearer " + KEY}
        try:
            if self.path != "/v1/chat/completions":
                status, body, extra = 404, {"error": {"message": "no route " + self.path}}, None
            elif not entry["auth_ok"]:
                status, body, extra = 401, {"error": {"message": "Incorrect API key provided",
                                                      "type": "invalid_request_error"}}, None
            elif n <= FAIL_FIRST:
                status = FAIL_STATUS
                body = {"error": {"message": "stand-in failure %d of %d" % (n, FAIL_FIRST)}}
                extra = {"Retry-After": RETRY_AFTER} if RETRY_AFTER is not None else None
            else:
                try:
                    req = json.loads(raw)
                except ValueError:
                    req = None
                err, facts = check_shape(req)
                entry.update(facts)
                if err:
                    status, body, extra = 400, {"error": {"message": err}}, None
                else:
                    content = [{"type": "text", "text": TEXT}] if ARRAY else TEXT
                    status, extra = 200, None
                    body = {"id": "chatcmpl-%d" % n, "object": "chat.completion",
                            "model": facts["model"],
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": content}}]}
            entry["status"] = status
            if status != 200:
                entry["error"] = body["error"]["message"]
            self.reply(status, body, extra)
        finally:
            with lock:
                with open(LOG, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or not KEY:
        sys.exit("usage: CAPTION_SERVER_KEY=... caption_server.py PORT_FILE LOG_FILE")
    port_file, LOG = sys.argv[1], sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(port_file + ".tmp", port_file)
    print(port, flush=True)
    server.serve_forever()
