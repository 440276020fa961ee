"""Recompute a SigV4 Authorization with botocore, as AWS would verify it.

Reads one JSON object on stdin:
  {"method", "url", "headers": [[name, value], ...], "body", "access_key",
   "secret_key", "region", "service", "amz_date"}
`headers` are the headers the request arrived with that its SignedHeaders names (AWS
checks exactly those). Prints the Authorization botocore computes for them.

S3 uses `S3SigV4Auth` (single path escaping; the payload hash is the body's SHA-256, or
UNSIGNED-PAYLOAD when payload signing is off), every other service `SigV4Auth` (double
path escaping; X-Amz-Content-SHA256 if present, else the body's SHA-256).
"""

import datetime
import json
import sys
from unittest import mock

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials


def main() -> None:
    spec = json.load(sys.stdin)
    request = AWSRequest(
        method=spec["method"], url=spec["url"], data=spec["body"].encode()
    )
    for name, value in spec["headers"]:
        request.headers[name] = value  # appends: repeated headers stay repeated

    credentials = Credentials(spec["access_key"], spec["secret_key"])
    if spec["service"] == "s3":
        auth = S3SigV4Auth(credentials, "s3", spec["region"])
        declared = request.headers.get("X-Amz-Content-SHA256")
        signing = declared != "UNSIGNED-PAYLOAD"
        request.context["client_config"] = Config(s3={"payload_signing_enabled": signing})
    else:
        auth = SigV4Auth(credentials, spec["service"], spec["region"])

    now = datetime.datetime.strptime(spec["amz_date"], "%Y%m%dT%H%M%SZ")
    with mock.patch("botocore.auth.get_current_datetime", return_value=now):
        auth.add_auth(request)
    print(request.headers["Authorization"])


if __name__ == "__main__":
    main()
