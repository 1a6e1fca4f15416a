#!/usr/bin/env python3
"""Official clients against a running atelier server (started by crates/atelier/tests/server.rs).

Usage: clients.py BASE_URL API_KEY
Checks: openai images (b64_json and url), replicate run / create+wait / cancel, webhook
signatures verified with the standardwebhooks package. Prints one line per check and a final
'N passed, N failed' line; exit 1 on any failure.
"""
import base64
import io
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import openai
import replicate
import standardwebhooks

BASE, KEY = sys.argv[1], sys.argv[2]
passed, failed = 0, 0


def png_size(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def check(name, fn):
    global passed, failed
    try:
        fn()
        print(f"ok   {name}")
        passed += 1
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        print(f"FAIL {name}: {type(e).__name__}: {e}")
        failed += 1


oai = openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY)
rep = replicate.Client(api_token=KEY, base_url=BASE)


def openai_b64():
    r = oai.images.generate(model="sd15-tiny", prompt="a photo ticket", n=2, size="64x96",
                            response_format="b64_json", extra_body={"steps": 2, "seed": 5})
    assert len(r.data) == 2, r
    for d in r.data:
        raw = base64.b64decode(d.b64_json, validate=True)
        assert png_size(raw) == (64, 96), png_size(raw)


def openai_url():
    r = oai.images.generate(model="sd15-tiny", prompt="a cinema ticket", size="64x64",
                            response_format="url", extra_body={"steps": 2})
    assert len(r.data) == 1 and r.data[0].url.startswith(BASE), r
    # Signed links work without the key.
    raw = httpx.get(r.data[0].url).raise_for_status().content
    assert png_size(raw) == (64, 64)


def replicate_run():
    out = rep.run("atelier/text-to-image", input={"prompt": "a ticket", "width": 64, "height": 64, "steps": 2, "seed": 3})
    assert out["seeds"] == [3], out
    url = str(out["images"][0])
    raw = httpx.get(url).raise_for_status().content
    assert png_size(raw) == (64, 64)


def replicate_create_wait_cancel():
    p = rep.models.predictions.create(model="atelier/text-to-image",
                                      input={"prompt": "one", "width": 64, "height": 64, "steps": 2})
    p.wait()
    assert p.status == "succeeded", (p.status, p.error)
    assert len(p.output["images"]) == 1
    # A long job, cancelled while queued or running.
    q = rep.models.predictions.create(model="atelier/text-to-image",
                                      input={"prompt": "long", "width": 256, "height": 256, "steps": 150})
    q.cancel()
    q.wait()
    assert q.status == "canceled", q.status
    got = rep.predictions.get(q.id)
    assert got.status == "canceled"


class Hooks(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Hooks.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def webhooks_signed():
    srv = HTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}/hook"
    secret = rep.webhooks.default.secret().key
    assert secret.startswith("whsec_")
    p = rep.models.predictions.create(model="atelier/text-to-image",
                                      input={"prompt": "hooked", "width": 64, "height": 64, "steps": 2},
                                      webhook=url, webhook_events_filter=["start", "completed"])
    p.wait()
    deadline = time.time() + 20
    while time.time() < deadline and len(Hooks.received) < 2:
        time.sleep(0.1)
    srv.shutdown()
    assert len(Hooks.received) >= 2, Hooks.received
    wh = standardwebhooks.Webhook(secret)
    statuses = []
    for headers, body in Hooks.received:
        h = {k.lower(): v for k, v in headers.items()}
        payload = wh.verify(body, h)  # raises on a bad signature
        assert payload["id"] == p.id
        statuses.append(payload["status"])
    assert "succeeded" in statuses, statuses
    # A tampered body must fail verification.
    headers, body = Hooks.received[-1]
    try:
        wh.verify(body + b" ", {k.lower(): v for k, v in headers.items()})
        raise AssertionError("tampered payload verified")
    except standardwebhooks.webhooks.WebhookVerificationError:
        pass


check("openai images.generate b64_json decodes at 64x96", openai_b64)
check("openai images.generate url downloads at 64x64", openai_url)
check("replicate run returns images and seeds", replicate_run)
check("replicate predictions.create + wait + cancel", replicate_create_wait_cancel)
check("webhooks verified by standardwebhooks", webhooks_signed)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
