#!/usr/bin/env python3
"""create-bucket: make the bucket that SEQARENA_STORAGE (`s3://bucket/prefix`) names, if it is missing.

The one-shot step of compose.hostnet.yaml's S3 server (seqarena itself never creates buckets, see
docs/DEPLOY.md). Endpoint, region and credentials come from the AWS SDK's variables
(AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). Prints one line;
exit 2 with one line if SEQARENA_STORAGE is not an s3:// URL.
"""

import os
import sys
from urllib.parse import urlsplit

import boto3

raw = os.environ.get("SEQARENA_STORAGE", "")
bucket = urlsplit(raw).netloc if raw.startswith("s3://") else ""
if not bucket:
    print(f"create-bucket: SEQARENA_STORAGE: got {raw!r}; allowed: s3://bucket/prefix", file=sys.stderr)
    sys.exit(2)
client = boto3.client("s3")
if bucket in {item["Name"] for item in client.list_buckets().get("Buckets", [])}:
    print(f"create-bucket: {bucket} exists")
else:
    client.create_bucket(Bucket=bucket)
    print(f"create-bucket: created {bucket}")
