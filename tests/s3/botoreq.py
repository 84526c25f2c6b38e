#!/usr/bin/python3
"""tests/s3/botoreq.py: one S3 request signed by botocore, bent on purpose.

awscli always signs correctly; the S3 test world's negative tests need requests
that are signed by an independent signer and then spoiled in one precise way.
Runs with Debian's python3 and python3-botocore.

Usage: botoreq.py [options] METHOD PATH[?QUERY]
  --body FILE             send FILE as the body
  --sign-body FILE        sign FILE's SHA-256 but send --body (a mismatch)
  --header 'Name: value'  a header, signed (repeatable)
  --unsigned-header 'Name: value'  a header added after signing (repeatable)
  --skew SECONDS          sign as if the clock were SECONDS ahead (or behind)
  --presign SECONDS       print a presigned URL valid SECONDS instead of sending
  --region REGION         default $AWS_REGION
Credentials and endpoint from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY. Prints the HTTP status on the first line, then the body.
"""
import argparse
import datetime
import http.client
import os
import sys
import types
import urllib.parse

import botocore.auth
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def header_pair(text):
    name, _, value = text.partition(":")
    return name.strip(), value.strip()


def skew_clock(seconds):
    """botocore reads datetime.datetime.utcnow(); shift what it sees."""

    class Skewed(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds)

    botocore.auth.datetime = types.SimpleNamespace(datetime=Skewed, timedelta=datetime.timedelta)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("method")
    ap.add_argument("path")
    ap.add_argument("--body")
    ap.add_argument("--sign-body")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--unsigned-header", action="append", default=[])
    ap.add_argument("--skew", type=int, default=0)
    ap.add_argument("--presign", type=int)
    ap.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    args = ap.parse_args()

    endpoint = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    if args.skew:
        skew_clock(args.skew)
    body = read(args.body) if args.body else b""
    signed_body = read(args.sign_body) if args.sign_body else body
    request = AWSRequest(method=args.method, url=endpoint + args.path,
                         data=signed_body, headers=dict(header_pair(h) for h in args.header))
    if args.presign is not None:
        S3SigV4QueryAuth(creds, "s3", args.region, expires=args.presign).add_auth(request)
        print(request.prepare().url)
        return 0
    S3SigV4Auth(creds, "s3", args.region).add_auth(request)
    prepared = request.prepare()
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    for h in args.unsigned_header:
        name, value = header_pair(h)
        headers[name] = value
    url = urllib.parse.urlsplit(prepared.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    target = url.path + ("?" + url.query if url.query else "")
    conn.request(args.method, target, body=body if body or args.method in ("PUT", "POST") else None,
                 headers=headers)
    response = conn.getresponse()
    print(response.status)
    sys.stdout.flush()
    sys.stdout.buffer.write(response.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
