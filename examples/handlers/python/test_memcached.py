"""Tests of memcached.py: python3 -m unittest discover -s examples/handlers/python

They sign requests on their own, as the gateway does, rather than with the
handler's code. TestPythonHandlerUnitTests in cmd/gateway runs them in
`make test`; the Go tests there also run `gateway call` against the handler.
"""

import base64
import hashlib
import hmac
import http.client
import json
import threading
import time
import unittest
from http.server import ThreadingHTTPServer

import memcached

SECRET = b"whsec_" + base64.b64encode(b"secret-key")


def signed(body, secret=b"secret-key", msg_id="delivery-1", at=None):
    """The headers the gateway sends with body: key is the decoded secret."""
    stamp = str(int(time.time()) if at is None else at)
    mac = hmac.new(secret, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


class VerifyTest(unittest.TestCase):
    NOW = 1_700_000_000

    def verify(self, headers, body=b"{}", secret=SECRET, *more):
        return memcached.verify([memcached.signing_key(s) for s in (secret, *more)], headers, body, self.NOW)

    def test_accepts_a_fresh_signature_with_the_secret(self):
        self.assertTrue(self.verify(signed(b"{}", at=self.NOW - 299)))
        self.assertTrue(self.verify(signed(b"{}", secret=b"raw secret", at=self.NOW), secret=b"raw secret"))

    def test_any_one_of_several_signatures_is_enough(self):
        headers = signed(b"{}", at=self.NOW)
        headers["webhook-signature"] = "v1,b3RoZXI= " + headers["webhook-signature"]
        self.assertTrue(self.verify(headers))

    def test_any_one_of_several_keys_is_enough_while_a_secret_is_rotated(self):
        for name, (signer, want) in {"the new secret": (b"new-key", True), "the previous one": (b"secret-key", True),
                                     "a retired one": (b"retired", False)}.items():
            with self.subTest(name):
                self.assertEqual(self.verify(signed(b"{}", secret=signer, at=self.NOW), b"{}", b"new-key", SECRET), want)

    def test_the_timestamp_is_signed_as_sent(self):
        sent = "0" + str(self.NOW)  # the same second, written otherwise
        as_sent = signed(b"{}", at=self.NOW)
        as_sent["webhook-timestamp"] = sent
        as_sent["webhook-signature"] = signed(b"{}", at=sent)["webhook-signature"]
        self.assertTrue(self.verify(as_sent))
        canonical = dict(as_sent, **{"webhook-signature": signed(b"{}", at=self.NOW)["webhook-signature"]})
        self.assertFalse(self.verify(canonical))

    def test_refuses(self):
        good = signed(b"{}", at=self.NOW)
        cases = {
            "another secret": signed(b"{}", secret=b"other", at=self.NOW),
            "another body": signed(b"[]", at=self.NOW),
            "a timestamp over 5 minutes old": signed(b"{}", at=self.NOW - 301),
            "a timestamp over 5 minutes ahead": signed(b"{}", at=self.NOW + 301),
            "no webhook-id": dict(good, **{"webhook-id": ""}),
            "a timestamp that is not a number": dict(good, **{"webhook-timestamp": "soon"}),
            "a timestamp in other digits than ASCII": dict(good, **{"webhook-timestamp": "\u0661" * 10}),
            "no signature": {k: v for k, v in good.items() if k != "webhook-signature"},
        }
        for name, headers in cases.items():
            with self.subTest(name):
                self.assertFalse(self.verify(headers))


class SigningKeyTest(unittest.TestCase):
    """The key is taken from a secret as the gateway takes it from a Secret of the same bytes."""

    def test_surrounding_ascii_whitespace_is_not_part_of_the_key(self):
        cases = {
            b"raw-key": b"raw-key",
            b"raw-key\n": b"raw-key",
            b" \traw-key\r\n": b"raw-key",
            b"raw key\n": b"raw key",
            "raw-key\u00a0\n".encode(): "raw-key\u00a0".encode(),  # a no-break space is not ASCII whitespace
            SECRET + b"\n": b"secret-key",
        }
        for secret, key in cases.items():
            with self.subTest(secret=secret):
                self.assertEqual(memcached.signing_key(secret), key)

    def test_refuses_a_secret_no_key_comes_from(self):
        for secret in (b"", b" \n", b"whsec_", b"whsec_not*base64!", b"whsec_c2VjcmV0YQ", b"whsec_c2Vj\ncmV0"):
            with self.subTest(secret=secret), self.assertRaises(ValueError) as caught:
                memcached.signing_key(secret)
            if secret[6:]:
                self.assertNotIn(secret[6:].decode(), str(caught.exception))


def memcached_object(size=3, name="mc"):
    return {"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
            "metadata": {"name": name, "namespace": "demo"}, "spec": {"size": size}}


def pod(name, instance="mc", phase="Running", terminating=False):
    meta = {"name": name, "labels": {"app": "memcached", "memcached_cr": instance}}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": {"phase": phase}}


class HandlerTest(unittest.TestCase):
    """The handler over HTTP, as the gateway calls it."""

    def setUp(self):
        quiet = type("QuietHandler", (memcached.Handler,), {"log_message": lambda *_: None})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), quiet)
        self.server.keys = [memcached.signing_key(SECRET)]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)

    def post(self, path, request, sign=True):
        body = json.dumps(request).encode()
        conn = http.client.HTTPConnection(*self.server.server_address, timeout=10)
        self.addCleanup(conn.close)
        conn.request("POST", path, body, signed(body) if sign else {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())

    def test_create_and_update_answer_the_deployment_and_an_event(self):
        for path, event, reason in (("/create", "create", "Created"), ("/update", "update", "Scaled")):
            with self.subTest(path):
                status, got = self.post(path, {"event": event, "callback": "any-id", "object": memcached_object(5)})
                self.assertEqual(status, 200)
                deployment = got["children"][0]
                labels = {"app": "memcached", "memcached_cr": "mc"}
                self.assertEqual((deployment["metadata"]["name"], deployment["spec"]["replicas"]), ("mc", 5))
                self.assertEqual(deployment["spec"]["selector"]["matchLabels"], labels)
                self.assertEqual(deployment["spec"]["template"]["metadata"]["labels"], labels)
                self.assertEqual(got["events"], [{"type": "Normal", "reason": reason, "message": "Deployment mc with 5 replicas"}])

    def test_sync_lists_this_instances_live_pods_sorted(self):
        pods = [pod("c"), pod("a"), pod("b"), pod("gone", terminating=True), pod("done", phase="Succeeded"),
                pod("other", instance="another")]
        request = {"event": "sync", "object": memcached_object(), "related": {"v1/Pod": {p["metadata"]["name"]: p for p in pods}}}
        self.assertEqual(self.post("/sync", request), (200, {"status": {"nodes": ["a", "b", "c"]}}))
        self.assertEqual(self.post("/sync", {"event": "sync", "object": memcached_object()}), (200, {"status": {"nodes": []}}))

    def test_delete_releases_the_finalizer_and_backup_stamps_the_status(self):
        self.assertEqual(self.post("/delete", {"event": "delete", "object": memcached_object()}), (200, {"finalized": True}))
        status, got = self.post("/backup", {"event": "timer", "object": memcached_object()})
        self.assertRegex(got["status"]["lastBackup"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(got["events"][0]["reason"], "Backup")

    def test_a_bad_size_is_a_permanent_error(self):
        for size in (None, "3", True, 0, 11):
            with self.subTest(size=size):
                status, got = self.post("/create", {"event": "create", "object": memcached_object(size)})
                self.assertEqual(status, 200)
                self.assertTrue(got["error"]["permanent"], got)
                self.assertNotIn("children", got)

    def test_refusals_are_temporary_errors(self):
        request = {"event": "create", "object": memcached_object()}
        for name, (path, sign, code) in {"unsigned": ("/create", False, 401), "an unknown path": ("/nope", True, 404)}.items():
            with self.subTest(name):
                status, got = self.post(path, request, sign=sign)
                self.assertEqual(status, code)
                self.assertFalse(got["error"]["permanent"], got)

    def test_a_body_length_is_refused_before_anything_is_read(self):
        """Nothing is sent after the headers: a handler that read the body first would wait for it."""
        cases = {"too large": ("16777217", 413, False), "negative": ("-1", 400, True),
                 "not a number": ("ten", 400, True), "absent": (None, 400, True)}
        for name, (length, code, permanent) in cases.items():
            with self.subTest(name):
                conn = http.client.HTTPConnection(*self.server.server_address, timeout=5)
                self.addCleanup(conn.close)
                conn.putrequest("POST", "/create", skip_accept_encoding=True)
                if length is not None:
                    conn.putheader("Content-Length", length)
                conn.endheaders()
                resp = conn.getresponse()
                got = json.loads(resp.read())
                self.assertEqual((resp.status, got["error"]["permanent"]), (code, permanent), got)

    def test_healthz(self):
        conn = http.client.HTTPConnection(*self.server.server_address, timeout=10)
        self.addCleanup(conn.close)
        conn.request("GET", "/healthz")
        self.assertEqual(conn.getresponse().status, 200)


if __name__ == "__main__":
    unittest.main()
