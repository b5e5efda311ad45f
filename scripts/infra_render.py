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
