"""What CloudFormation deploys from a template, for checks that linters miss.

A SAM template is first expanded by the SAM translator (the same library
`sam deploy` uses), so resources SAM generates (schedules, their roles, the
event-invoke config) are checked too. The plain template is then rendered by
cloud-radar for given parameter values: conditions decided, intrinsics
resolved, optional properties dropped. A `Ref` to a resource renders as its
logical id and a `GetAtt` as `Name.Attribute`.
"""
import contextlib
import copy
import io
import json

import boto3
from cfnlint.decode import decode
from cloud_radar.cf.unit import Template
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

REGION = "eu-west-1"

# The example values in iam/*.json, for each name the template refers to.
EXAMPLES = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "s3-kms-sync",
    "Prefix": "backups",
    "BackupBucket": "example-backups",
    "BackupKey.Arn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    # CloudFormation's Arn of a log group ends in ":*".
    "FunctionLogGroup.Arn": "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/s3-kms-sync-backup:*",
    "FailedRunsQueue.Arn": "arn:aws:sqs:eu-west-1:123456789012:s3-kms-sync-FailedRunsQueue",
    "EfsFileSystemId": "fs-0123456789abcdef0",
    "EfsAccessPointArn": "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-0123456789abcdef0",
    "PreviousKmsKeyArns": ["arn:aws:kms:eu-west-1:123456789012:key/0f9e8d7c-12ab-34cd-56ef-1234567890ab"],
    "SigningKey.Arn": "arn:aws:kms:eu-west-1:123456789012:key/5e1f2a3b-12ab-34cd-56ef-1234567890ab",
    "InventoryBucket.Arn": "arn:aws:s3:::example-inventory",
    "BatchOperationsRole.Arn": "arn:aws:iam::123456789012:role/s3-kms-sync-BatchOperationsRole-EXAMPLE",
    "ReplicaBucketArn": "arn:aws:s3:::example-backups-replica",
    "ReplicaKmsKeyArn": "arn:aws:kms:eu-central-1:123456789012:key/5678efab-12ab-34cd-56ef-1234567890ab",
}


def load(path):
    """The template at `path` as plain JSON-like data."""
    template, matches = decode(str(path))
    if matches:
        raise ValueError(f"{path}: {matches}")
    return json.loads(json.dumps(template, default=str))


def expand_sam(template):
    """The plain CloudFormation the SAM transform produces."""
    template = copy.deepcopy(template)
    if "Transform" not in template:
        return template
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # The translator wants an uploaded artifact; its location is irrelevant here.
            resource["Properties"]["CodeUri"] = "s3://artifacts/function.zip"
    session = boto3.session.Session(region_name=REGION)
    return Translator({}, Parser(), boto_session=session).translate(template, parameter_values={})


def render(template, params, stack_name="s3-kms-sync"):
    """The resources and outputs of a stack deployed from plain CloudFormation
    `template` with `params` (names the template does not declare are left out)."""
    declared = template.get("Parameters", {})
    given = {k: v for k, v in params.items() if k in declared}
    Template.StackName = stack_name
    # cloud-radar prints as it transforms; only the result matters here.
    with contextlib.redirect_stdout(io.StringIO()):
        stack = Template(copy.deepcopy(template)).create_stack(given, region=REGION)
    return {"Resources": stack.get("Resources", {}), "Outputs": stack.get("Outputs", {})}


def resources_of(rendered, resource_type):
    return {
        name: resource.get("Properties", {})
        for name, resource in rendered["Resources"].items()
        if resource["Type"] == resource_type
    }
