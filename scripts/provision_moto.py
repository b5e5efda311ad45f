"""Create the demo bucket, a customer-managed KMS key and a manifest signing
key in a running moto server, as the template does.

Prints the key ARN, then the signing key's ARN, one per line. Reads the
endpoint and credentials from the standard AWS_* variables.

With --public-key KEY PEM_FILE instead, writes KEY's public key as PEM (what
the stack's SigningPublicKeyCommand output does with the AWS CLI).
"""
import os
import pathlib
import sys

import boto3
from cryptography.hazmat.primitives import serialization


def main(bucket: str) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    kms = boto3.client("kms", endpoint_url=endpoint)
    key = kms.create_key(Description="s3-kms-sync local key")["KeyMetadata"]
    signing = kms.create_key(
        Description="s3-kms-sync manifest signatures", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"
    )["KeyMetadata"]
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    default_encryption(s3, bucket, key["Arn"])
    print(key["Arn"])
    print(signing["Arn"])


def write_public_key(key_id: str, path: str) -> None:
    kms = boto3.client("kms", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    pem = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pathlib.Path(path).write_bytes(pem)


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
    if sys.argv[1] == "--public-key":
        write_public_key(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1])
