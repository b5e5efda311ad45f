"""Makes moto's KMS Sign and Verify honour MessageType DIGEST, as AWS does.

AWS KMS, given `MessageType: DIGEST`, signs the message as the digest
itself and skips its own hashing (KMS API Reference, Sign: "When the value
of MessageType is DIGEST, KMS skips the hashing step in the signing
algorithm"). moto 5 ignores MessageType and hashes the digest again, so
its signatures would verify only against SHA-256(SHA-256(manifest)), which
no signature made by AWS does. Imported before moto serves a request.
"""
import base64
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from moto.kms.exceptions import ValidationException
from moto.kms.utils import ECDSAPrivateKey
from moto.kms.responses import KmsResponse

DIGEST_LENGTHS = {"ECDSA_SHA_256": 32}

original_sign = KmsResponse.sign
original_verify = KmsResponse.verify


def _digest_key(response):
    """The ECDSA key and algorithm of a DIGEST request, or None to defer to moto."""
    if response._get_param("MessageType") != "DIGEST":
        return None
    key = response.kms_backend.describe_key(response._get_param("KeyId"))
    algorithm = response._get_param("SigningAlgorithm")
    if not isinstance(key.private_key, ECDSAPrivateKey) or algorithm not in DIGEST_LENGTHS:
        return None
    digest = response._get_param("Message")
    if len(digest) != DIGEST_LENGTHS[algorithm]:
        raise ValidationException(
            f"Digest is invalid length for algorithm {algorithm}."
        )
    return key, algorithm, digest


def _prehashed():
    return ec.ECDSA(utils.Prehashed(hashes.SHA256()))


def sign(self):
    found = _digest_key(self)
    if found is None:
        return original_sign(self)
    key, algorithm, digest = found
    signature = key.private_key.private_key.sign(digest, _prehashed())
    return json.dumps({
        "KeyId": key.arn,
        "Signature": base64.b64encode(signature).decode("utf-8"),
        "SigningAlgorithm": algorithm,
    })


def verify(self):
    found = _digest_key(self)
    if found is None:
        return original_verify(self)
    key, algorithm, digest = found
    signature = self._get_param("Signature")
    if isinstance(signature, str):
        signature = base64.b64decode(signature)
    try:
        key.private_key.private_key.public_key().verify(signature, digest, _prehashed())
        valid = True
    except Exception:
        valid = False
    return json.dumps({"KeyId": key.arn, "SignatureValid": valid, "SigningAlgorithm": algorithm})


KmsResponse.sign = sign
KmsResponse.verify = verify
