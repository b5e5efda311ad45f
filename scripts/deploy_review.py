"""Checks of what happens when CloudFormation deploys the template, which
no linter models: the calls its resource handlers make with the deployer's
permissions, and the order in which resources are created and deleted.

Each check takes an infra_review.Subject and returns a list of problems.
"""
import fnmatch
import json
import pathlib

import yaml

from infra_review import as_list, statements

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = pathlib.Path(yaml.__file__).resolve().parent.parent / "cfnlint" / "data" / "schemas"
REGION_SCHEMAS = SCHEMAS / "providers" / "eu-west-1.json"
# The handlers CloudFormation calls on a resource it creates, updates or
# deletes; a retained resource is never deleted by it.
HANDLERS = ("create", "read", "update", "delete")
ENI_ACTIONS = ("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface")


def handler_permissions(resource_type):
    """The permissions cfn-lint's resource schema lists for each handler of
    `resource_type` (from the CloudFormation registry)."""
    index = json.loads(REGION_SCHEMAS.read_text())
    schema = json.loads((SCHEMAS / "resources" / f"{index[resource_type]}.json").read_text())
    handlers = schema.get("handlers", {})
    return {name: handlers.get(name, {}).get("permissions", []) for name in HANDLERS}


def allows(policy, action):
    """Whether an Allow statement of `policy` names `action` (by its
    wildcards; resources and conditions are not judged here)."""
    return any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower())
        for st in statements(policy)
        if st["Effect"] == "Allow"
        for pattern in as_list(st.get("Action", []))
    )


def deployer_exceptions():
    """Handler permissions the deployer does without, by resource type: the
    action patterns of iam/deployer-exceptions.yaml (each has a reason)."""
    path = ROOT / "iam" / "deployer-exceptions.yaml"
    excepted = {}
    for entry in yaml.safe_load(path.read_text()) or []:
        if not entry.get("reason"):
            raise ValueError(f"{path}: an exception of {entry['type']} gives no reason")
        excepted.setdefault(entry["type"], []).extend(entry["actions"])
    return excepted


def is_excepted(excepted, kind, action):
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in excepted.get(kind, []))


def deployer_covers_handlers(s):
    """The deployer may make every call the handlers of every resource type
    the template creates, in any scenario, make; a retained resource's
    delete handler excepted."""
    needed = {}
    for stack in s.stacks.values():
        for resource in stack["Resources"].values():
            retained = resource.get("DeletionPolicy") == "Retain"
            for handler, actions in handler_permissions(resource["Type"]).items():
                if handler == "delete" and retained:
                    continue
                for action in actions:
                    needed.setdefault((resource["Type"], action), set()).add(handler)
    excepted = deployer_exceptions()
    return [
        f"the deployer cannot {action}, which the {'/'.join(sorted(handlers))} handler of {kind} calls"
        for (kind, action), handlers in sorted(needed.items())
        if not allows(s.deployer, action) and not is_excepted(excepted, kind, action)
    ]


def vpc_function_depends_on_eni_policies(s):
    """A function with a VPC configuration depends on every policy that
    grants its role the ENI actions: Lambda checks them when the
    configuration is set, and needs them to delete the ENIs."""
    problems = []
    for scenario, stack in s.stacks.items():
        resources = stack["Resources"]
        for name, function in resources.items():
            if function["Type"] != "AWS::Lambda::Function" or not function.get("Properties", {}).get("VpcConfig"):
                continue
            role = str(function["Properties"].get("Role", ""))
            depends = set(as_list(function.get("DependsOn", [])))
            for policy_name, policy in resources.items():
                if policy["Type"] != "AWS::IAM::Policy":
                    continue
                properties = policy["Properties"]
                grants = all(allows(properties["PolicyDocument"], a) for a in ENI_ACTIONS)
                attached = any(r in role for r in map(str, as_list(properties.get("Roles", []))))
                if grants and attached and policy_name not in depends:
                    problems.append(f"{scenario}: {name} has a VPC configuration but does not depend on {policy_name}, which grants its ENI actions")
    return problems


def filling_buckets_are_kept(s):
    """A bucket that fills at run time is retained (CloudFormation does not
    empty buckets, so deleting it fails) or its emptying is documented."""
    documented = (ROOT / "README.md").read_text()
    problems = []
    for scenario, stack in s.stacks.items():
        for name, resource in stack["Resources"].items():
            if resource["Type"] != "AWS::S3::Bucket" or resource.get("DeletionPolicy") == "Retain":
                continue
            if f"empty {name}" not in documented:
                problems.append(f"{scenario}: bucket {name} fills at run time but has no DeletionPolicy Retain, and the README does not say how to empty it")
    return problems


CHECKS = [
    ("deployer handlers", deployer_covers_handlers),
    ("vpc ordering", vpc_function_depends_on_eni_policies),
    ("bucket deletion", filling_buckets_are_kept),
]
