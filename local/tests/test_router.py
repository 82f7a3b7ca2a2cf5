"""Unit tests of the edge router's translations and the provisioner's substitution rule
(no stack needed): `make test-e2e` runs them before starting the stack."""

import base64
import json
import unittest
from email.message import EmailMessage
from urllib.parse import urlencode

from egress_local.provision import substitute
from egress_local.router import (
    function_name_from_path,
    sent_email,
    sns_lambda_event,
    translate_watch_response,
)


class FunctionNameTest(unittest.TestCase):
    def test_when_invoked_by_name_arn_or_qualifier_then_the_binary_name_is_used(self):
        cases = {
            "/2015-03-31/functions/copy-to-staging/invocations": "copy-to-staging",
            "/2015-03-31/functions/copy-to-staging:live/invocations": "copy-to-staging",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-2%3A123456789012%3Afunction%3Anotify-requester/invocations": "notify-requester",
            "/2015-03-31/functions/arn:aws:lambda:eu-west-2:123456789012:function:notify-requester:$LATEST/invocations": "notify-requester",
            "/2015-03-31/functions/123456789012:function:record-task-token/invocations": "record-task-token",
        }
        for path, name in cases.items():
            self.assertEqual(function_name_from_path(path), name, path)

    def test_when_the_path_is_not_an_invoke_then_there_is_no_function(self):
        for path in ["/", "/2015-03-31/functions/x", "/2015-03-31/functions//invocations", "/bucket/key"]:
            self.assertIsNone(function_name_from_path(path), path)


class WatchResponseTest(unittest.TestCase):
    def test_when_the_function_fails_then_lambda_answers_200_with_the_function_error(self):
        body = json.dumps({"errorType": "NotFound", "errorMessage": "version v1 is missing"}).encode()
        status, headers, out = translate_watch_response(500, body)
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Amz-Function-Error"], "Unhandled")
        self.assertEqual(json.loads(out)["errorType"], "NotFound")

    def test_when_the_function_succeeds_then_its_answer_passes_unchanged(self):
        status, headers, out = translate_watch_response(200, b'{"deleted_objects": 3}')
        self.assertEqual((status, out), (200, b'{"deleted_objects": 3}'))
        self.assertNotIn("X-Amz-Function-Error", headers)

    def test_when_watch_itself_fails_then_it_is_a_lambda_service_error(self):
        status, headers, _ = translate_watch_response(500, b"internal error, not a function answer")
        self.assertEqual((status, headers["x-amzn-ErrorType"]), (502, "ServiceException"))
        status, headers, _ = translate_watch_response(404, b"no such binary")
        self.assertEqual((status, headers["x-amzn-ErrorType"]), (404, "ResourceNotFoundException"))


class SnsEventTest(unittest.TestCase):
    def test_when_sns_posts_a_notification_then_the_function_gets_an_sns_lambda_event(self):
        event = sns_lambda_event(
            {
                "Type": "Notification",
                "MessageId": "m-1",
                "TopicArn": "arn:aws:sns:eu-west-2:123456789012:swb-egress-topic",
                "Message": '{"id": "r-1"}',
                "Timestamp": "2024-03-02T08:00:01.123Z",
                "SigningCertURL": "https://example/cert.pem",
                "UnsubscribeURL": "https://example/unsubscribe",
            },
            "arn:aws:sns:eu-west-2:123456789012:swb-egress-topic:sub",
        )
        record = event["Records"][0]
        self.assertEqual(record["EventSource"], "aws:sns")
        self.assertEqual(record["Sns"]["Message"], '{"id": "r-1"}')
        self.assertEqual(record["Sns"]["MessageId"], "m-1")
        self.assertEqual(record["Sns"]["SigningCertUrl"], "https://example/cert.pem")
        self.assertEqual(record["Sns"]["MessageAttributes"], {})
        self.assertIsNone(record["Sns"]["Subject"])


class SentEmailTest(unittest.TestCase):
    def test_when_ses_v1_sends_an_email_then_it_is_caught(self):
        body = urlencode(
            {
                "Action": "SendEmail",
                "Source": "noreply@tre.example.org",
                "Destination.ToAddresses.member.1": "researcher@tre.example.org",
                "Destination.CcAddresses.member.1": "owner@tre.example.org",
                "Message.Subject.Data": "Egress request approved",
                "Message.Body.Text.Data": "Hello",
            }
        ).encode()
        caught = sent_email("POST", "/", {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}, body)
        self.assertEqual(caught["recipients"], ["owner@tre.example.org", "researcher@tre.example.org"])
        self.assertEqual((caught["subject"], caught["text"]), ("Egress request approved", "Hello"))

    def test_when_ses_v2_sends_raw_mime_then_subject_and_text_are_read(self):
        mime = EmailMessage()
        mime["From"], mime["To"], mime["Subject"] = "a@x.org", "b@x.org", "Rejected"
        mime.set_content("Reason: identifiable")
        body = json.dumps(
            {
                "FromEmailAddress": "a@x.org",
                "Destination": {"ToAddresses": ["b@x.org"]},
                "Content": {"Raw": {"Data": base64.b64encode(mime.as_bytes()).decode()}},
            }
        ).encode()
        caught = sent_email("POST", "/v2/email/outbound-emails", {}, body)
        self.assertEqual((caught["subject"], caught["recipients"]), ("Rejected", ["b@x.org"]))
        self.assertIn("identifiable", caught["text"])

    def test_when_the_request_is_not_an_email_then_nothing_is_caught(self):
        self.assertIsNone(sent_email("POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}, b"Action=Publish"))
        self.assertIsNone(sent_email("GET", "/v2/email/outbound-emails", {}, b""))


class SubstitutionTest(unittest.TestCase):
    def test_when_every_placeholder_has_a_value_then_all_are_replaced(self):
        self.assertEqual(substitute('{"T": "${A}", "U": "${B}"}', {"A": "1", "B": "2"}), '{"T": "1", "U": "2"}')

    def test_when_a_placeholder_or_a_value_is_left_over_then_start_fails(self):
        with self.assertRaises(SystemExit):
            substitute('{"T": "${A}"}', {})
        with self.assertRaises(SystemExit):
            substitute('{"T": "${A}"}', {"A": "1", "Unused": "2"})


if __name__ == "__main__":
    unittest.main()
