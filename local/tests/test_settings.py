"""Unit tests of the stack's settings (no stack needed): how many instances of each function
`cargo lambda watch` may run at once."""

import os
import unittest
from unittest import mock

from egress_local.settings import DEFAULT_LAMBDA_CONCURRENCY, lambda_concurrency


class LambdaConcurrencyTest(unittest.TestCase):
    def test_when_unset_or_blank_then_the_default_is_used(self):
        for env in ({}, {"EGRESS_LAMBDA_CONCURRENCY": " "}):
            with mock.patch.dict(os.environ, env, clear=True):
                self.assertEqual(lambda_concurrency(), DEFAULT_LAMBDA_CONCURRENCY)
        self.assertGreater(DEFAULT_LAMBDA_CONCURRENCY, 1, "one instance per function queues every request")

    def test_when_set_then_that_many_instances_are_allowed(self):
        with mock.patch.dict(os.environ, {"EGRESS_LAMBDA_CONCURRENCY": "16"}):
            self.assertEqual(lambda_concurrency(), 16)

    def test_when_not_a_number_or_out_of_range_then_the_start_stops_with_the_variable_named(self):
        for raw in ("many", "0", "-2", "65"):
            with mock.patch.dict(os.environ, {"EGRESS_LAMBDA_CONCURRENCY": raw}):
                with self.assertRaises(SystemExit) as caught:
                    lambda_concurrency()
                self.assertIn("EGRESS_LAMBDA_CONCURRENCY", str(caught.exception))


if __name__ == "__main__":
    unittest.main()


class PortsTest(unittest.TestCase):
    def test_when_no_base_is_set_then_every_port_is_below_the_ephemeral_range(self):
        from egress_local.settings import Ports

        with mock.patch.dict("os.environ", {}, clear=True):
            ports = Ports.from_env()
        # Linux hands out 32768-60999 (IANA 49152-65535) as the client end of connections;
        # one of those in TIME-WAIT refused the next stack its port. The reviewer API takes
        # the edge port + 10.
        self.assertLess(max(ports.named().values()) + 10, 32768)
        self.assertEqual(ports.edge, 27100)

    def test_when_a_base_is_set_then_the_stack_uses_it(self):
        from egress_local.settings import Ports

        with mock.patch.dict("os.environ", {"EGRESS_STACK_PORT_BASE": "47100"}):
            self.assertEqual(Ports.from_env().moto, 47101)
