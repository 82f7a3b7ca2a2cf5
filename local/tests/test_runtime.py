"""Tests of the local Lambda service (local/egress_local/runtime.py): the Invoke API in front
of the runtime API, with functions that are small Python scripts speaking the runtime API as
the Rust runtime does (poll `next`, post `response` or `error`)."""

import http.client
import json
import os
import socket
import stat
import sys
import tempfile
import threading
import time
import unittest
from http.server import ThreadingHTTPServer
from pathlib import Path

from egress_local import runtime

# A function: answers each event by what it asks for.
FUNCTION = """#!{python}
import json, os, sys, time, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
if os.environ.get("FAIL_INIT"):
    sys.exit(3)
while True:
    with urllib.request.urlopen(api + "next", timeout=120) as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read() or b"null")
    if event.get("die"):
        os._exit(9)
    time.sleep(event.get("sleep", 0))
    if event.get("fail"):
        body, path = {{"errorType": "Validation", "errorMessage": "bad event"}}, "/error"
    else:
        body, path = {{"instance": os.environ["AWS_LAMBDA_INSTANCE_ID"], "env": os.environ.get("ONLY_MINE"), "echo": event}}, "/response"
    req = urllib.request.Request(api + request_id + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req, timeout=30).read()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LambdaServiceTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        binary = Path(self.dir.name) / "fn"
        binary.write_text(FUNCTION.format(python=sys.executable))
        binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
        self.port = free_port()
        self.log = open(Path(self.dir.name) / "log", "wb")
        self.service = runtime.Service(
            self.port,
            {"fn": binary, "broken": binary},
            {"fn": {"ONLY_MINE": "fn"}, "broken": {"FAIL_INIT": "1"}},
            concurrency=3,
            timeouts={"fn": 10.0},
            log_file=self.log,
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), runtime.handler_for(self.service))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tearDown(self):
        self.server.shutdown()
        self.service.stop()
        self.server.server_close()
        self.log.close()
        self.dir.cleanup()

    def invoke(self, function: str, event: dict) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", f"/2015-03-31/functions/{function}/invocations", body=json.dumps(event))
        resp = conn.getresponse()
        status, body = resp.status, resp.read()
        conn.close()
        return status, json.loads(body) if body.startswith(b"{") else {"raw": body.decode()}

    def test_when_invoked_then_the_function_answers_with_only_its_own_environment(self):
        status, body = self.invoke("fn", {"n": 1})
        self.assertEqual(status, 200)
        self.assertEqual(body["echo"], {"n": 1})
        self.assertEqual(body["env"], "fn")

    def test_when_the_function_fails_then_the_answer_is_a_500_with_its_error(self):
        status, body = self.invoke("fn", {"fail": True})
        self.assertEqual(status, 500)
        self.assertEqual(body["errorType"], "Validation")

    def test_when_an_instance_dies_mid_invocation_then_that_invocation_fails_and_the_next_runs(self):
        status, body = self.invoke("fn", {"die": True})
        self.assertEqual(status, 500)
        self.assertEqual(body["errorType"], "Runtime.ExitError")
        self.assertIn("exit status 9", body["errorMessage"])
        status, body = self.invoke("fn", {"n": 2})
        self.assertEqual((status, body["echo"]), (200, {"n": 2}))

    def test_when_idle_instances_are_killed_then_the_next_invocation_starts_a_new_one(self):
        # `make chaos` kills every process of a function; the idle ones die with their `next`
        # poll held, and an invocation handed to such a poll would be lost until its timeout.
        status, _ = self.invoke("fn", {"n": 1})
        self.assertEqual(status, 200)
        time.sleep(0.3)  # the instance is back in its `next` poll
        with self.service.lock:
            idle = [i.process for i in self.service.instances["fn"].values()]
        self.assertTrue(idle)
        for process in idle:
            process.kill()
            process.wait()
        started = time.time()
        status, body = self.invoke("fn", {"n": 2})
        self.assertEqual((status, body["echo"]), (200, {"n": 2}))
        self.assertLess(time.time() - started, 8.0, "the invocation waited for a dead instance")

    def test_when_invocations_overlap_then_they_run_on_separate_instances(self):
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.invoke("fn", {"sleep": 1.0}))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(all(status == 200 for status, _ in results), results)
        instances = {body["instance"] for _, body in results}
        self.assertGreater(len(instances), 1, "overlapping invocations shared one instance")
        self.assertLessEqual(len(self.service.instances["fn"]), 3, "never more instances than the concurrency")

    def test_when_a_function_cannot_start_then_the_invocation_fails_instead_of_restarting_forever(self):
        status, body = self.invoke("broken", {})
        self.assertEqual(status, 500)
        self.assertEqual(body["errorType"], "Runtime.ExitError")
        self.assertEqual(self.service.instances["broken"], {})

    def test_when_the_function_outlives_its_timeout_then_the_invocation_fails_and_the_instance_stops(self):
        self.service.timeouts["fn"] = 0.5
        status, body = self.invoke("fn", {"sleep": 5})
        self.assertEqual(status, 500)
        self.assertEqual(body["errorType"], "Sandbox.Timedout")
        deadline = time.monotonic() + 10
        while self.service.instances["fn"] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.service.instances["fn"], {}, "the timed-out instance was stopped")

    def test_when_an_invocation_waits_for_a_free_instance_then_its_timeout_starts_when_it_is_taken(self):
        # One instance, a 1.5 s timeout, two invocations of 1 s at once: the second waits about
        # 1 s for the instance and then runs 1 s; on Lambda both succeed.
        self.service.concurrency = 1
        self.service.timeouts["fn"] = 1.5
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.invoke("fn", {"sleep": 1.0}))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([status for status, _ in results], [200, 200], results)
        self.assertEqual(len({body["instance"] for _, body in results}), 1, "one instance served both")

    def test_when_the_function_is_unknown_then_the_answer_is_404(self):
        status, _ = self.invoke("nope", {})
        self.assertEqual(status, 404)


if __name__ == "__main__":
    unittest.main()


class NoDelayTest(unittest.TestCase):
    def test_when_the_runtime_api_answers_then_nagles_delay_is_off(self):
        # Headers and body are two writes; with Nagle on, a function's kept-alive poll got
        # its event up to 40 ms late (the router's NoDelayTest checks the socket itself).
        self.assertTrue(runtime.handler_for(None).disable_nagle_algorithm)
