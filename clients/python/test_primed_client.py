"""The Python client against a real daemon (PRIMED_HTTP_SOCKET names its API socket). Run by
the Rust integration tests (tests/it/http.rs), or by hand:

    PRIMED_HTTP_SOCKET=/run/user/1000/primed/primed.http.sock python3 -m unittest -v
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from primed_client import Client, PrimedError  # noqa: E402


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = Client.from_env()

    def test_submit_and_wait_for_the_answers(self):
        jobs = self.client.submit([97, "91", 2**89 - 1])
        answers = self.client.wait([job["id"] for job in jobs])
        self.assertEqual([answers[job["id"]].get("prime") for job in jobs], [True, False, True])

    def test_invalid_inputs_are_reported_with_their_index(self):
        full = self.client.submit_full(["7", "seven"])
        self.assertEqual(len(full["jobs"]), 1)
        self.assertEqual(full["errors"][0]["index"], 1)
        with self.assertRaises(PrimedError) as refused:
            self.client.submit(["seven"])
        self.assertEqual(refused.exception.status, 422)

    def test_a_retry_with_its_key_gets_the_same_jobs(self):
        first = self.client.submit(["11", "12"], idempotency_key="py-retry-1")
        again = self.client.submit(["11", "12"], idempotency_key="py-retry-1")
        self.assertEqual(first, again)

    def test_cancel_a_job_that_would_run_for_ever(self):
        job = self.client.make_prime(9000)
        self.assertIn(job["id"], [j["id"] for j in self.client.jobs()])
        self.assertEqual(self.client.cancel(job["id"]), {"id": job["id"], "cancelled": True})
        self.assertEqual(self.client.result(job["id"])["error"], "cancelled")
        with self.assertRaises(PrimedError) as again:
            self.client.cancel(job["id"])
        self.assertEqual(again.exception.status, 409)

    def test_unknown_ids_raise_404(self):
        with self.assertRaises(PrimedError) as unknown:
            self.client.result(10**12)
        self.assertEqual(unknown.exception.status, 404)
        self.assertIn("no job with id", unknown.exception.message)

    def test_status_tree_alarms_metrics(self):
        self.assertTrue(self.client.ping())
        self.assertEqual(self.client.status()["role"], "leader")
        self.assertEqual(self.client.tree()["name"], "root")
        self.assertIsInstance(self.client.alarms(), list)
        self.assertIn("primed_jobs_submitted_total", self.client.metrics())

    def test_events_stream_stored_then_live(self):
        events = self.client.events()
        self.assertEqual(next(events)["event"], "daemon_start")
        self.client.kill("tester-1")
        for event in events:
            if event["event"] == "restart" and event["actor"] == "tester-1":
                break
        events.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
