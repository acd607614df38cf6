#!/usr/bin/env python3
"""The Memcached handler of the operator guide, for opgate, in plain Python.

Only the standard library: no framework, nothing to install. It answers the
callbacks of examples/operators/memcached.yaml:

  create-deployment, resize  a Deployment of spec.size memcached replicas
  status (sync)              status.nodes: the names of the memcached pods
  cleanup (delete)           finalized: true
  backup (timer)             status.lastBackup and a Normal "Backup" event

Requests are routed by their callback id, and by their event when the id is
not one of those. With a secret (--hmac-secret-file or $OPGATE_HMAC_SECRET)
every request must carry a valid Standard Webhooks signature, checked exactly
as callbacks/signature.go checks it; otherwise it is answered 401.

    python3 memcached.py --addr 127.0.0.1:8081 --hmac-secret-file secret.txt
"""

import argparse
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger("memcached-handler")

IMAGE = "memcached:1.4.36"
MEMCACHED_PORT = 11211
MIN_SIZE, MAX_SIZE = 1, 10
INSTANCE_LABEL = "memcached_cr"
MAX_BODY_BYTES = 16 << 20  # callbacks.DefaultMaxRequestBytes
TOLERANCE_SECONDS = 5 * 60  # callbacks.DefaultTolerance
SECRET_PREFIX = b"whsec_"
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

# What Go's strconv.ParseInt(s, 10, 64) accepts, before the range check.
_UNIX_SECONDS = re.compile(r"[+-]?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
# A Kubernetes label value, once it is at most 63 characters.
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
# Standard base64 with padding, the only form Go's StdEncoding decodes.
_STD_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
# The characters Go's unicode.IsSpace knows, which strings.Fields splits on.
_GO_SPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


# --- Standard Webhooks verification (the twin of callbacks/signature.go) ---


class SignatureError(Exception):
    """A request whose signature headers are missing, stale or wrong."""


def go_base64_decode(data):
    """Decode standard, padded base64 exactly as Go's
    base64.StdEncoding.DecodeString does: CR and LF are skipped, padding
    may only end the last quantum. None when Go would refuse it."""
    data = data.replace(b"\r", b"").replace(b"\n", b"")
    if not _STD_BASE64.fullmatch(data):
        return None
    return base64.b64decode(data)


def signing_key(secret):
    """The HMAC key a secret stands for: the base64-decoded rest of a
    "whsec_" secret, or the raw bytes otherwise (also when the rest is not
    valid base64 or decodes to nothing), as callbacks.signingKey decides."""
    if not secret.startswith(SECRET_PREFIX):
        return secret
    return go_base64_decode(secret[len(SECRET_PREFIX):]) or secret


def signature_mac(key, msg_id, unix, body):
    """HMAC-SHA256 of "id.timestamp.body"; the timestamp is the parsed
    number written again, as Go signs it, not the header's own spelling."""
    signed = msg_id + b"." + str(unix).encode("ascii") + b"." + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(key, msg_id, unix, body):
    """The webhook-signature header value the gateway would send."""
    return "v1," + base64.b64encode(signature_mac(key, msg_id.encode("latin-1"), unix, body)).decode("ascii")


def verify(key, headers, body, now):
    """Raise SignatureError unless body carries a valid v1 signature made
    with key within TOLERANCE_SECONDS of now (Unix seconds). Any one of
    several space-separated signatures is enough (secret rotation)."""
    msg_id = headers.get("webhook-id") or ""
    stamp = headers.get("webhook-timestamp") or ""
    signatures = headers.get("webhook-signature") or ""
    if not (msg_id and stamp and signatures):
        raise SignatureError("webhook-id, webhook-timestamp or webhook-signature header missing")
    if len(stamp) > 20 or not _UNIX_SECONDS.fullmatch(stamp) or not INT64_MIN <= int(stamp) <= INT64_MAX:
        raise SignatureError("webhook-timestamp is not Unix seconds")
    unix = int(stamp)
    if unix < now - TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is too old")
    if unix > now + TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp is too far in the future")
    # http.server decodes header bytes as Latin-1: encoding back gives the
    # bytes Go signed; decoding those as UTF-8 splits as Go's Fields does.
    want = signature_mac(key, msg_id.encode("latin-1"), unix, body)
    text = signatures.encode("latin-1").decode("utf-8", errors="replace")
    for field in _GO_SPACE.split(text):
        version, comma, sig = field.partition(",")
        if not comma or version != "v1":
            continue  # another scheme we do not speak
        got = go_base64_decode(sig.encode("utf-8"))
        if got is not None and hmac.compare_digest(got, want):
            return
    raise SignatureError("no webhook-signature matches the body")


# --- The operator's logic: one function per callback ---
# The same answers as the Go handler, examples/handlers/memcached/handlers.go.


class Refusal(Exception):
    """A request the handler cannot serve; answered as a permanent error."""


class NoRoute(Exception):
    """A request for a callback and event this handler does not know."""


def normal_event(reason, message):
    return {"type": "Normal", "reason": reason, "message": message}


def desired_size(obj):
    """spec.size, checked although the CRD already enforces it (the handler
    may run against an older CRD). A bad size is permanent: only a new spec
    can fix it."""
    spec = obj.get("spec")
    size = spec.get("size") if isinstance(spec, dict) else None
    if size is None:
        raise Refusal("spec.size is not set")
    if isinstance(size, bool) or not isinstance(size, int):
        raise Refusal("spec.size is not an integer: %s" % json.dumps(size))
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise Refusal("spec.size %d is outside %d..%d" % (size, MIN_SIZE, MAX_SIZE))
    name = obj["metadata"]["name"]
    if len(name) > 63 or not _LABEL_VALUE.fullmatch(name):
        raise Refusal("name %r cannot be the %s label" % (name, INSTANCE_LABEL))
    return size


def deployment_for(name, replicas):
    """The guide's memcached Deployment. Its pods carry the instance label,
    so two Memcacheds in a namespace never adopt each other's pods."""
    labels = {"app": "memcached", INSTANCE_LABEL: name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [{
                        "name": "memcached",
                        "image": IMAGE,
                        "command": ["memcached", "-m=64", "-o", "modern", "-v"],
                        "ports": [{"name": "memcached", "containerPort": MEMCACHED_PORT}],
                    }],
                },
            },
        },
    }


def create_deployment(request, reason="Created"):
    obj = request["object"]
    size, name = desired_size(obj), obj["metadata"]["name"]
    message = "Deployment %s with %d replicas" % (name, size)
    return {"children": [deployment_for(name, size)], "events": [normal_event(reason, message)]}


def resize(request):
    """The same Deployment with the new size; the gateway applies it in place."""
    obj = request["object"]
    size = desired_size(obj)
    message = "to %d replicas" % size
    old_size = ((request.get("old") or {}).get("spec") or {}).get("size")
    if isinstance(old_size, int) and not isinstance(old_size, bool):
        message = "from %d to %d replicas" % (old_size, size)
    return {"children": [deployment_for(obj["metadata"]["name"], size)], "events": [normal_event("Scaled", message)]}


def report_nodes(request):
    """status.nodes: the sorted names of this instance's live pods (not
    being deleted, not finished). No children: a sync answer with children
    is the full desired set, and the Deployment need not be restated."""
    name = request["object"]["metadata"]["name"]
    nodes = []
    for pod in ((request.get("related") or {}).get("v1/Pod") or {}).values():
        meta = pod.get("metadata") or {}
        phase = (pod.get("status") or {}).get("phase")
        if ((meta.get("labels") or {}).get(INSTANCE_LABEL) == name and not meta.get("deletionTimestamp")
                and phase not in ("Succeeded", "Failed")):
            nodes.append(meta["name"])
    return {"status": {"nodes": sorted(nodes)}}  # never null: null would delete status.nodes


def cleanup(request):
    """Nothing to delete (the Deployment goes with its owner); this is where
    external resources would be released before the finalizer goes."""
    LOG.info("cleaning up memcached %s", request["object"]["metadata"]["name"])
    return {"finalized": True}


def backup(request):
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    LOG.info("backing up memcached %s at %s", request["object"]["metadata"]["name"], at)
    return {"status": {"lastBackup": at}, "events": [normal_event("Backup", "backed up at " + at)]}


# Callback ids of examples/operators/memcached.yaml, then events for
# requests whose id is not one of them.
BY_CALLBACK = {
    "create-deployment": create_deployment,
    "resize": resize,
    "status": report_nodes,
    "cleanup": cleanup,
    "backup": backup,
}
BY_EVENT = {
    "create": create_deployment,
    "update": resize,
    "resume": lambda request: create_deployment(request, "Resumed"),
    "sync": report_nodes,
    "delete": cleanup,
    "timer": backup,
}


def answer(request):
    """The response to one decoded CallbackRequest."""
    route = BY_CALLBACK.get(request.get("callback")) or BY_EVENT.get(request.get("event"))
    if route is None:
        raise NoRoute("no handler for callback %r or event %r" % (request.get("callback"), request.get("event")))
    try:
        return route(request)
    except Refusal as err:
        return {"error": {"message": str(err), "permanent": True}}


def _refuse_constant(name):
    raise ValueError("%s is not JSON" % name)


def decode_request(body):
    """Parse a request body; ValueError when it is not a CallbackRequest."""
    request = json.loads(body, parse_constant=_refuse_constant)  # NaN and Infinity are not JSON
    if not isinstance(request, dict):
        raise ValueError("request is not a JSON object")
    obj = request.get("object")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ValueError("request has no object with metadata.name")
    return request


# --- HTTP ---


class Server(ThreadingHTTPServer):
    """The HTTP server; it carries the handler's configuration, so nothing
    lives in module globals. Request threads are joined on close, so a
    shutdown lets in-flight callbacks finish."""

    daemon_threads = False

    def __init__(self, address, key):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, CallbackHandler)
        self.key = key


class CallbackHandler(BaseHTTPRequestHandler):
    """Answers GET /healthz and POSTed callbacks on any path (they are routed
    by the body), as the Go handler's callbacks.Mux does; refusals carry an
    error in the body, permanent for a malformed request only."""

    server_version = "opgate-memcached-python"
    timeout = 30  # seconds a slow client may hold a thread

    def do_GET(self):
        if self.path.split("?", 1)[0] != "/healthz":
            self.method_not_allowed()
            return
        data = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_HEAD = do_GET

    def method_not_allowed(self):
        self.refuse(405, "method %s is not allowed; callbacks are POSTed" % self.command, {"Allow": "POST"})

    do_PUT = do_PATCH = do_DELETE = method_not_allowed

    def do_POST(self):
        started = time.monotonic()
        body = self.read_body()
        if body is None:
            return
        if self.server.key is not None:
            try:
                verify(self.server.key, self.headers, body, int(time.time()))
            except SignatureError as err:
                LOG.warning("refused %s: %s", self.path, err)
                self.refuse(401, "signature refused: %s" % err)
                return
        try:
            request = decode_request(body)
        except (ValueError, RecursionError) as err:
            self.refuse(400, "malformed request: %s" % err)
            return
        try:
            response = answer(request)
        except NoRoute as err:
            LOG.warning("%s", err)
            self.refuse(404, str(err))
            return
        except Exception:  # a bug here: the gateway retries; the log says why
            LOG.exception("callback %s failed", request.get("callback"))
            self.send_json(500, {"error": {"message": "internal error"}})
            return
        self.send_json(200, response)
        LOG.info("%s callback=%s event=%s object=%s in %.1fms", self.path, request.get("callback"),
                 request.get("event"), request["object"]["metadata"]["name"], (time.monotonic() - started) * 1000)

    def read_body(self):
        """The request body, read up to MAX_BODY_BYTES; None once an error
        has been answered."""
        length = self.headers.get("Content-Length")
        if length is None:
            self.refuse(411, "Content-Length required")
        elif not _DIGITS.fullmatch(length):
            self.refuse(400, "invalid Content-Length")
        elif int(length) > MAX_BODY_BYTES:
            self.refuse(413, "request body is over %d bytes" % MAX_BODY_BYTES)
        else:
            return self.rfile.read(int(length))
        return None

    def refuse(self, code, message, headers=None):
        # Only a malformed request (400) is permanent: a 401, 404, 405, 411 or
        # 413 ends once the handler or the gateway is configured right, so
        # the gateway retries it, as callbacks.Mux says too.
        self.send_json(code, {"error": {"message": message, "permanent": code == 400}}, headers)

    def send_json(self, code, payload, headers=None):
        data = json.dumps(payload).encode("utf-8")
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's name)
        LOG.debug("%s %s", self.address_string(), format % args)


# --- Command line ---


def parse_address(addr, port):
    host, sep, port_text = addr.rpartition(":")
    if not sep or not _DIGITS.fullmatch(port_text):
        raise ValueError("--addr %r is not host:port" % addr)
    host = host.strip("[]")
    return host, port if port is not None else int(port_text)


def load_secret(path):
    """The HMAC secret from a file (without surrounding whitespace, as the Go
    handler and `gateway call --hmac-secret-file` read it), else
    $OPGATE_HMAC_SECRET; None when neither is set."""
    if path:
        with open(path, "rb") as f:
            secret = f.read()
        secret = secret.strip()  # a file often ends in a newline that is not part of it
        if not secret:
            raise ValueError("%s is empty" % path)
        return secret
    return os.environb.get(b"OPGATE_HMAC_SECRET") or None


def main(argv=None):
    parser = argparse.ArgumentParser(description="The guide's Memcached handler for opgate, standard library only.")
    parser.add_argument("--addr", default="127.0.0.1:8081", help="host:port to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, help="port to listen on; overrides the port of --addr")
    parser.add_argument("--hmac-secret-file", help="verify signatures with the secret in this file "
                        "(default: $OPGATE_HMAC_SECRET; neither: no verification)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")

    try:
        address = parse_address(args.addr, args.port)
        secret = load_secret(args.hmac_secret_file)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    try:
        server = Server(address, signing_key(secret) if secret else None)
    except OSError as err:
        LOG.error("cannot listen on %s:%d: %s", address[0], address[1], err)
        return 1
    if secret is None:
        LOG.warning("no HMAC secret: requests are not verified")

    def stop(signum, _frame):
        # shutdown() waits for serve_forever() to return, so it cannot run
        # here in the main thread, which is serving.
        def shut_down():
            LOG.info("%s: shutting down", signal.Signals(signum).name)
            server.shutdown()
        threading.Thread(target=shut_down, name="shutdown").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    LOG.info("listening on http://%s:%d", *server.server_address[:2])
    # Serving in the main thread, whose select() wakes every 0.5s, lets a
    # signal delivered to any thread reach the handler above.
    server.serve_forever()
    server.server_close()  # wait for the callbacks in flight
    return 0


if __name__ == "__main__":
    sys.exit(main())
