"""A moto server whose Step Functions execute state machines, their Lambda
tasks invoking the function that `cargo lambda watch` serves.

Usage: moto_sfn.py PORT LAMBDA_ENDPOINT

moto's own Lambda runs functions in Docker, which this tool's test machines
do not have. So the Lambda client of moto's Step Functions interpreter is
pointed at cargo lambda watch's Invoke API, and the function runs for real
on the Lambda runtime API; S3, KMS and the Distributed Map's ItemReader are
moto's, in this one process.
"""
import json
import os
import sys
import threading
import urllib.request

import boto3
from botocore.config import Config

port, lambda_endpoint = int(sys.argv[1]), sys.argv[2]
# The interpreter's own S3 client (the ItemReader) calls back into this server.
os.environ["MOTO_PORT"] = str(port)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kms_digest  # noqa: E402,F401  (KMS signs by digest as AWS does)
from moto.server import ThreadedMotoServer  # noqa: E402
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: E402

original = lambda_eval_utils.boto_client_for


def routed(region, service, state_credentials=None):
    if service != "lambda":
        return original(region, service, state_credentials)
    return boto3.client(
        "lambda",
        endpoint_url=lambda_endpoint,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=900, parameter_validation=False),
    )


lambda_eval_utils.boto_client_for = routed

server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
server.start()
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/moto-api/config",
    data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
)
urllib.request.urlopen(request).read()
print(f"moto with executing Step Functions on {port}; Lambda tasks go to {lambda_endpoint}", flush=True)
threading.Event().wait()
