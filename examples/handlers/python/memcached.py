#!/usr/bin/env python3
"""The guide's Memcached handler for opgate, in standard-library Python: it answers the callbacks
of examples/operators/memcached.yaml by URL path and, given --hmac-secret-file (once per secret
while one is rotated), refuses with 401 a request without a Standard Webhooks signature made with
one of the secrets in the last 5 minutes."""

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import pathlib
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE = 5 * 60  # seconds between a signature's timestamp and now, either way
MAX_BODY = 16 << 20  # bytes of a request, as the Go toolkit's Mux: the gateway's fit well under it


def signing_key(secret):
    """The HMAC key of a secret, by the gateway's rule: surrounding ASCII whitespace (a file's final
    newline) is not part of it; then the base64-decoded rest of a "whsec_" secret, else the secret
    itself. A "whsec_" secret whose rest is not strict base64 is a ValueError, never a raw key: the
    gateway refuses it too. The message never quotes the secret."""
    secret = secret.strip()  # bytes.strip() drops ASCII whitespace only, as the gateway does
    if not secret:
        raise ValueError("the secret is empty")
    if not secret.startswith(b"whsec_"):
        return secret
    try:
        key = base64.b64decode(secret[6:], validate=True)
    except binascii.Error as err:
        raise ValueError(f'the part after "whsec_" is not standard base64 ({err})') from None
    if not key:
        raise ValueError('"whsec_" is followed by no key')
    return key


def verify(keys, headers, body, now):
    """Whether a webhook-signature is "v1," and the base64 HMAC-SHA256 of "id.timestamp.body" under
    one of keys, with a recent timestamp, so that it cannot be replayed later. There may be several
    signatures, and several keys while a secret is rotated. The timestamp is signed as sent."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not (stamp.isascii() and stamp.isdigit()) or abs(now - int(stamp)) > TOLERANCE:
        return False
    signatures = [sig.encode() for sig in headers.get("webhook-signature", "").split()]
    for key in keys:
        want = b"v1," + base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
        if any(hmac.compare_digest(sig, want) for sig in signatures):
            return True
    return False


class Refused(Exception):
    """A spec only its author can fix: answered as a permanent error, which is not retried."""


def deployment(req):
    """The answer to create and update: the object's Deployment, and an Event saying so."""
    name, size = req["object"]["metadata"]["name"], req["object"].get("spec", {}).get("size")
    if type(size) is not int or not 1 <= size <= 10:  # as the CRD says, in case it is older
        raise Refused(f"spec.size {json.dumps(size)} is not an integer from 1 to 10")
    labels = {"app": "memcached", "memcached_cr": name}  # so that instances never share pods
    container = {"name": "memcached", "image": "memcached:1.4.36",
                 "command": ["memcached", "-m=64", "-o", "modern", "-v"],
                 "ports": [{"name": "memcached", "containerPort": 11211}]}
    child = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
             "spec": {"replicas": size, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}
    message = f"Deployment {name} with {size} replicas"
    reason = "Scaled" if req["event"] == "update" else "Created"
    return {"children": [child], "events": [{"type": "Normal", "reason": reason, "message": message}]}


def nodes(req):
    """The live pods of this instance. No children: in a sync answer they would prune the rest."""
    name = req["object"]["metadata"]["name"]
    pods = [p for p in (req.get("related") or {}).get("v1/Pod", {}).values()
            if p["metadata"].get("labels", {}).get("memcached_cr") == name
            and "deletionTimestamp" not in p["metadata"]
            and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
    return {"status": {"nodes": sorted(p["metadata"]["name"] for p in pods)}}


def backup(req):
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"status": {"lastBackup": at},
            "events": [{"type": "Normal", "reason": "Backup", "message": "backed up at " + at}]}


ROUTES = {"/create": deployment, "/update": deployment, "/sync": nodes, "/backup": backup,
          "/delete": lambda req: {"finalized": True}}  # the Deployment goes with its owner


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.reply(200, "ok") if self.path == "/healthz" else self.refuse(404, "GET /healthz only")

    def do_POST(self):
        length = self.headers.get("Content-Length", "")
        if not (length.isascii() and length.isdigit()):  # absent, negative or not a number: never read
            return self.refuse(400, "Content-Length must be given as a number of bytes")
        if int(length) > MAX_BODY:  # refused unread, before the signature can be checked
            return self.refuse(413, f"request body is over {MAX_BODY} bytes")
        body, keys = self.rfile.read(int(length)), self.server.keys
        if keys and not verify(keys, self.headers, body, time.time()):
            return self.refuse(401, "signature missing, wrong or older than 5 minutes")
        if self.path not in ROUTES:
            return self.refuse(404, f"no callback at {self.path}")
        try:
            self.reply(200, ROUTES[self.path](json.loads(body)))
        except Refused as err:
            self.refuse(200, str(err))
        except Exception:  # a bug: 500, which the gateway retries; the traceback goes to stderr
            self.reply(500, {"error": {"message": "the handler failed"}})
            raise

    def refuse(self, code, message):  # a 401/404/413 is cured by configuration: not permanent
        self.close_connection = True  # the body may be left unread
        self.reply(code, {"error": {"message": message, "permanent": code in (200, 400)}})

    def reply(self, code, answer):
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The guide's Memcached handler for opgate.")
    parser.add_argument("--addr", default="127.0.0.1:8081", help="host:port to listen on (default %(default)s)")
    parser.add_argument("--hmac-secret-file", type=pathlib.Path, action="append", default=[],
                        help="verify signatures with the secret in it; repeat it to accept several while one is rotated")
    args = parser.parse_args()
    host, _, port = args.addr.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.keys = []
    for path in args.hmac_secret_file:
        try:
            server.keys.append(signing_key(path.read_bytes()))
        except (OSError, ValueError) as err:
            parser.error(f"--hmac-secret-file {path}: {err}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit())  # a clean exit, status 0
    server.serve_forever()
