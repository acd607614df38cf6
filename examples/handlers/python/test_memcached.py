"""Unit tests of memcached.py: python3 -m unittest discover -s examples/handlers/python

The end-to-end test, `gateway call` against this handler over HTTP, is
TestCallCommandAgainstThePythonHandler in cmd/gateway/call_python_test.go,
and TestPythonHandlerUnitTests there runs these.
"""

import unittest

import memcached

NOW = 1_700_000_000
BODY = b'{"event":"create"}'


def signed_headers(secret, body=BODY, msg_id="delivery-1", stamp=NOW):
    key = memcached.signing_key(secret)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": memcached.sign(key, msg_id, int(stamp), body),
    }


class VerifyTest(unittest.TestCase):
    def check(self, secret, headers, body=BODY):
        memcached.verify(memcached.signing_key(secret), headers, body, NOW)

    def test_accepts_what_it_signs_with_raw_and_whsec_secrets(self):
        for secret in (b"raw-secret", b"whsec_c2VjcmV0LWtleQ==", b"whsec_not base64!"):
            with self.subTest(secret=secret):
                self.check(secret, signed_headers(secret))

    def test_whsec_secret_is_the_decoded_key(self):
        self.assertEqual(memcached.signing_key(b"whsec_c2VjcmV0LWtleQ=="), b"secret-key")
        self.assertEqual(memcached.signing_key(b"whsec_c2VjcmV0\nLWtleQ=="), b"secret-key")
        self.assertEqual(memcached.signing_key(b"whsec_"), b"whsec_")
        self.assertEqual(memcached.signing_key(b"whsec_YQ==YQ=="), b"whsec_YQ==YQ==")

    def test_any_one_of_several_signatures_is_enough(self):
        headers = signed_headers(b"new-secret")
        headers["webhook-signature"] = "v1,AAAA v1a,xyz " + headers["webhook-signature"]
        self.check(b"new-secret", headers)

    def test_a_plus_signed_timestamp_is_signed_as_the_number(self):
        headers = signed_headers(b"s")
        headers["webhook-timestamp"] = "+%d" % NOW
        self.check(b"s", headers)

    def test_refuses(self):
        good = signed_headers(b"s")
        cases = {
            "another secret": (signed_headers(b"other"), BODY),
            "another body": (good, BODY + b" "),
            "a missing id": (dict(good, **{"webhook-id": ""}), BODY),
            "a missing signature": ({k: v for k, v in good.items() if k != "webhook-signature"}, BODY),
            "a stale timestamp": (signed_headers(b"s", stamp=NOW - 301), BODY),
            "a future timestamp": (signed_headers(b"s", stamp=NOW + 301), BODY),
            "a timestamp Go cannot parse": (dict(good, **{"webhook-timestamp": "1_700_000_000"}), BODY),
            "a timestamp out of int64": (dict(good, **{"webhook-timestamp": "9" * 5000}), BODY),
            "a non-v1 signature": (dict(good, **{"webhook-signature": "v2" + good["webhook-signature"][2:]}), BODY),
            "unpadded base64": (dict(good, **{"webhook-signature": good["webhook-signature"].rstrip("=")}), BODY),
        }
        for name, (headers, body) in cases.items():
            with self.subTest(name):
                with self.assertRaises(memcached.SignatureError):
                    self.check(b"s", headers, body)


def memcached_object(size=3, name="mc"):
    return {"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
            "metadata": {"name": name, "namespace": "demo"}, "spec": {"size": size}}


def pod(name, instance="mc", terminating=False, phase="Running"):
    meta = {"name": name, "labels": {"app": "memcached", "memcached_cr": instance}}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": {"phase": phase}}


class AnswerTest(unittest.TestCase):
    def test_create_answers_the_deployment_and_an_event(self):
        got = memcached.answer({"callback": "create-deployment", "event": "create", "object": memcached_object()})
        deployment = got["children"][0]
        self.assertEqual(deployment["metadata"]["name"], "mc")
        self.assertEqual(deployment["spec"]["replicas"], 3)
        labels = {"app": "memcached", "memcached_cr": "mc"}
        self.assertEqual(deployment["spec"]["selector"]["matchLabels"], labels)
        self.assertEqual(deployment["spec"]["template"]["metadata"]["labels"], labels)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual((container["image"], container["ports"][0]["containerPort"]), ("memcached:1.4.36", 11211))
        self.assertEqual(got["events"], [{"type": "Normal", "reason": "Created", "message": "Deployment mc with 3 replicas"}])

    def test_resize_says_from_which_size(self):
        got = memcached.answer({"callback": "resize", "event": "update", "object": memcached_object(size=5),
                                "old": memcached_object(size=2)})
        self.assertEqual(got["children"][0]["spec"]["replicas"], 5)
        self.assertEqual(got["events"][0]["message"], "from 2 to 5 replicas")

    def test_sync_lists_this_instances_live_pods_sorted(self):
        pods = [pod("c"), pod("a"), pod("b"), pod("gone", terminating=True), pod("done", phase="Succeeded"),
                pod("other", instance="another-mc")]
        related = {"v1/Pod": {p["metadata"]["name"]: p for p in pods}}
        got = memcached.answer({"callback": "status", "event": "sync", "object": memcached_object(), "related": related})
        self.assertEqual(got, {"status": {"nodes": ["a", "b", "c"]}})

    def test_sync_without_pods_answers_an_empty_list_not_null(self):
        got = memcached.answer({"callback": "status", "event": "sync", "object": memcached_object()})
        self.assertEqual(got, {"status": {"nodes": []}})

    def test_routes_by_event_when_the_callback_id_is_unknown(self):
        got = memcached.answer({"callback": "my-delete", "event": "delete", "object": memcached_object()})
        self.assertEqual(got, {"finalized": True})

    def test_backup_stamps_last_backup_in_utc(self):
        got = memcached.answer({"callback": "backup", "event": "timer", "object": memcached_object()})
        self.assertRegex(got["status"]["lastBackup"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(got["events"][0]["reason"], "Backup")

    def test_a_bad_object_is_a_permanent_error(self):
        cases = {
            "no size": memcached_object(size=None),
            "a size that is a string": memcached_object(size="3"),
            "a size that is a boolean": memcached_object(size=True),
            "a size below 1": memcached_object(size=0),
            "a size above 10": memcached_object(size=11),
            "a name that cannot be a label value": memcached_object(name="x" * 64),
        }
        for name, obj in cases.items():
            with self.subTest(name):
                got = memcached.answer({"callback": "create-deployment", "event": "create", "object": obj})
                self.assertTrue(got["error"]["permanent"], got)

    def test_an_unknown_callback_and_event_has_no_route(self):
        with self.assertRaises(memcached.NoRoute):
            memcached.answer({"callback": "x", "event": "explode", "object": memcached_object()})

    def test_decode_request_refuses_what_is_not_a_request(self):
        for body in (b"not json", b"[1]", b'{"object": {}}', b'{"object": {"metadata": {"name": NaN}}}'):
            with self.subTest(body=body):
                with self.assertRaises(ValueError):
                    memcached.decode_request(body)


if __name__ == "__main__":
    unittest.main()
