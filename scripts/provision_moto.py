"""Create the demo bucket and a customer-managed KMS key in a running moto server.

Prints the key ARN. Reads the endpoint and credentials from the standard AWS_* variables.
"""
import os
import sys

import boto3


def main(bucket: str) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    kms = boto3.client("kms", endpoint_url=endpoint)
    key = kms.create_key(Description="s3-kms-sync local key")["KeyMetadata"]
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    print(key["Arn"])


if __name__ == "__main__":
    main(sys.argv[1])
