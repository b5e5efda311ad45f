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
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    default_encryption(s3, bucket, key["Arn"])
    print(key["Arn"])


def default_encryption(s3, bucket: str, key_arn: str) -> None:
    """As the template sets it: SSE-KMS under the key, with a Bucket Key."""
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
            "BucketKeyEnabled": True,
        }]},
    )


if __name__ == "__main__":
    main(sys.argv[1])
