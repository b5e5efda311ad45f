"""Who may do what once the stack runs, evaluated offline.

Each case of iam/iam-cases.yaml (principal, action, resource, context, the
expected decision) is evaluated over the rendered template's policies
together: the principal's identity policies and permissions boundary, and
the resource's key policy or bucket policy, by @cloud-copilot/iam-simulate
(scripts/iam-simulate, installed by `make test`), with the ARNs that exist
at run time. Also: the replica stack admits the replication role whatever
the length of the source stack's name.

Exit status 0 when every case holds. With --expect-defects DIR, it instead
proves that every case marked `defect: true`, and the replica check, fail
on DIR's template and replica template (the state before the review).
"""
import argparse
import fnmatch
import json
import pathlib
import re
import subprocess
import sys

import yaml

import infra_review
from infra_render import expand_sam, load, render

ROOT = pathlib.Path(__file__).resolve().parent.parent
SIMULATOR = ROOT / "scripts" / "iam-simulate"
BOUNDARY = ROOT / "iam" / "permissions-boundary.json"
# The backup bucket's name as CloudFormation generates it (the permissions
# boundary admits buckets named for the stack).
BUCKET = "s3-kms-sync-backupbucket-1a2b3c4d5e6f"
# Stack names up to CloudFormation's 128 characters: a generated role name
# is cut at 64, so only a long one shows whether a name pattern matches.
LONG_STACK = "s3-kms-sync-backups-of-the-finance-departments-shared-drive-in-eu-west-1"
# iam-simulate 0.1.173 matches a context key with a variable part only when
# the part follows a '/' (aws:PrincipalTag/x), so it drops
# kms:EncryptionContext:aws:s3:arn, and any condition on it fails as if the
# key were missing. Policies and requests carry it under a stand-in that the
# simulator knows for the same actions, is a string as well, and that no
# policy of this stack uses; the case fails if a policy ever does.
ENCRYPTION_CONTEXT = "kms:EncryptionContext:aws:s3:arn"
STAND_IN = "kms:RequestAlias"
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def account_of(stack):
    """The account the renderer deploys into (its root principal's)."""
    found = re.search(r"arn:aws:iam::(\d{12}):root", json.dumps(stack))
    return found.group(1) if found else "123456789012"


def role_arn(account, stack_name, logical_id, path):
    """A role's ARN as CloudFormation names it: <stack>-<logical id>-<suffix>,
    cut at 64 characters, under its path."""
    name = f"{stack_name}-{logical_id}-AbCdEf123456"[:64]
    return f"arn:aws:iam::{account}:role{path or '/'}{name}"


class Deployed:
    """The rendered stack with the renderer's placeholders (`X.Arn`, a
    bucket's Ref) replaced by the ARNs that exist at run time."""

    def __init__(self, stack, stack_name="s3-kms-sync"):
        self.account = account = account_of(stack)
        resources = stack["Resources"]
        arns = {}
        for name, resource in resources.items():
            kind = resource["Type"]
            if kind == "AWS::IAM::Role":
                arns[name] = role_arn(account, stack_name, name, resource["Properties"].get("Path"))
            elif kind == "AWS::KMS::Key":
                arns[name] = f"arn:aws:kms:eu-west-1:{account}:key/{name.lower()}-0000-1111-2222-333344445555"
            elif kind == "AWS::S3::Bucket":
                arns[name] = f"arn:aws:s3:::{BUCKET if name == 'BackupBucket' else name.lower()}"
        self.arns = arns
        text = json.dumps(resources)
        for name, arn in sorted(arns.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(f'"{name}.Arn', f'"{arn}')
            if arn.startswith("arn:aws:s3:::"):
                text = text.replace(f"arn:aws:s3:::{name}", arn)
        self.resources = json.loads(text)

    def principal(self, name):
        if name == "stranger":
            return f"arn:aws:iam::{self.account}:role/administrator"
        if name.startswith("operator:"):
            return f"arn:aws:iam::{self.account}:user/{name[len('operator:'):]}"
        return self.arns[name]

    def operator_policy(self, name):
        """iam/<name>-policy.json, a CLI user's policy, with its example
        bucket and keys replaced by the stack's."""
        text = (ROOT / "iam" / f"{name}-policy.json").read_text()
        for example, actual in [
            ("arn:aws:s3:::example-backups", f"arn:aws:s3:::{BUCKET}"),
            ("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", self.arns["BackupKey"]),
            ("arn:aws:kms:eu-west-1:123456789012:key/5e1f2a3b-12ab-34cd-56ef-1234567890ab", self.arns["SigningKey"]),
            ("123456789012", self.account),
        ]:
            text = text.replace(example, actual)
        return json.loads(text)

    def identity_policies(self, name):
        if name == "stranger":
            return [{"name": "administrator", "policy": ALLOW_ALL}]
        if name.startswith("operator:"):
            operator = name[len("operator:"):]
            return [{"name": operator, "policy": self.operator_policy(operator)}]
        found = []
        role = self.resources[name]["Properties"]
        for policy in role.get("Policies", []):
            found.append({"name": policy["PolicyName"], "policy": clean(policy["PolicyDocument"])})
        for policy_name, resource in self.resources.items():
            if resource["Type"] == "AWS::IAM::Policy" and name in map(str, resource["Properties"].get("Roles", [])):
                found.append({"name": policy_name, "policy": clean(resource["Properties"]["PolicyDocument"])})
        return found

    def boundary(self, name):
        if name == "stranger" or name.startswith("operator:") or not self.resources[name]["Properties"].get("PermissionsBoundary"):
            return None
        # The file's example account is the renderer's here.
        text = BOUNDARY.read_text().replace("123456789012", self.account)
        return [{"name": "boundary", "policy": json.loads(text)}]

    def target(self, resource):
        """The resource's ARN, and its resource policy if it has one."""
        if resource.startswith("backup:"):
            policy = next(
                r["Properties"]["PolicyDocument"]
                for r in self.resources.values()
                if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == "BackupBucket"
            )
            return f"arn:aws:s3:::{BUCKET}/{resource[len('backup:'):]}", clean(policy)
        if resource in self.resources and self.resources[resource]["Type"] == "AWS::KMS::Key":
            return self.arns[resource], clean(self.resources[resource]["Properties"]["KeyPolicy"])
        return resource, None


def clean(document):
    """A policy as IAM holds it: optional statements left out (rendered as
    ""), and empty members of lists (an !If's AWS::NoValue) dropped."""
    def walk(node):
        if isinstance(node, list):
            return [walk(item) for item in node if item != ""]
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return node
    document = walk(document)
    document["Statement"] = infra_review.statements(document)
    return document


def simulation(deployed, case):
    text = json.dumps(case).replace("${BackupBucket}", BUCKET).replace("${Account}", deployed.account)
    case = json.loads(text)
    principal = case["principal"]
    arn, resource_policy = deployed.target(case["resource"])
    context = {"aws:PrincipalArn": deployed.principal(principal), "aws:SecureTransport": "true"}
    context.update(case.get("context", {}))
    sim = {
        "request": {
            "principal": deployed.principal(principal),
            "action": case["action"],
            "resource": {"resource": arn, "accountId": deployed.account},
            "contextVariables": context,
        },
        "identityPolicies": deployed.identity_policies(principal),
        "serviceControlPolicies": [],
        "resourceControlPolicies": [],
    }
    if resource_policy is not None:
        sim["resourcePolicy"] = resource_policy
    boundary = deployed.boundary(principal)
    if boundary:
        sim["permissionBoundaryPolicies"] = boundary
    return sim


def simulate(simulations):
    text = json.dumps(simulations)
    if STAND_IN in text:
        raise ValueError(f"a policy uses {STAND_IN}, the stand-in for {ENCRYPTION_CONTEXT}: choose another")
    out = subprocess.run(
        ["node", str(SIMULATOR / "simulate.mjs")],
        input=text.replace(ENCRYPTION_CONTEXT, STAND_IN), capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def scenario_stack(template, scenario):
    return render(expand_sam(template), infra_review.SCENARIOS[scenario])


def run_cases(template_path, cases):
    """Each case with its decision: (case, result, detail)."""
    template = load(template_path)
    stacks = {}
    simulations = []
    for case in cases:
        scenario = case.get("scenario", "everything")
        if scenario not in stacks:
            stacks[scenario] = Deployed(scenario_stack(template, scenario))
        simulations.append(simulation(stacks[scenario], case))
    judged = []
    for case, result in zip(cases, simulate(simulations)):
        ignored = [k for k in result.get("ignoredContextKeys", []) if k != "aws:SecureTransport"]
        if ignored:
            # A decision made without a key the case gave proves nothing.
            judged.append((case, "Error", f"the simulator ignored the context keys {ignored}"))
        else:
            judged.append((case, result["result"], json.dumps(result.get("errors", ""))[:400]))
    return judged


def replica_admits_the_role(template_path, replica_path):
    """The replica's bucket and key admit the source stack's replication
    role for a stack name long enough that its role name is cut."""
    source = render(expand_sam(load(template_path)), {**infra_review.SCENARIOS["everything"]}, stack_name=LONG_STACK)
    role = source["Resources"]["ReplicationRole"]["Properties"]
    account = account_of(source)
    arn = role_arn(account, LONG_STACK, "ReplicationRole", role.get("Path"))
    replica = render(load(replica_path), {"SourceAccountId": account, "SourceStackName": LONG_STACK})
    patterns = sorted(set(re.findall(r'"aws:PrincipalArn": "([^"]+)"', json.dumps(replica["Resources"]))))
    problems = [f"the replica admits {p}, which the replication role {arn} does not match" for p in patterns if not fnmatch.fnmatchcase(arn, p)]
    if not patterns:
        problems.append("the replica names no aws:PrincipalArn pattern")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect-defects", type=pathlib.Path)
    args = parser.parse_args()
    cases = yaml.safe_load((ROOT / "iam" / "iam-cases.yaml").read_text())
    directory = args.expect_defects
    if directory:
        cases = [c for c in cases if c.get("defect")]
    template = directory / "template.yaml" if directory else ROOT / "template.yaml"
    replica = directory / "replica.yaml" if directory else ROOT / "replica.yaml"
    problems = []
    for case, result, errors in run_cases(template, cases):
        expected = case["expect"]
        held = result == expected
        if result == "Error":
            problems.append(f"case {case['name']}: the simulator refused it: {errors}")
        elif directory:
            print(f"defect case {case['name']}: {'NOT FOUND' if held else f'{result}, not {expected}'}")
            if held:
                problems.append(f"case {case['name']} holds on {directory}")
        elif held:
            print(f"iam case ok: {case['name']}: {result}")
        else:
            problems.append(f"case {case['name']}: {result}, expected {expected}")
    replica_problems = replica_admits_the_role(template, replica)
    if directory:
        print(f"defect replica: {replica_problems[0] if replica_problems else 'NOT FOUND'}")
        if not replica_problems:
            problems.append(f"the replica check passes on {directory}")
    else:
        problems.extend(replica_problems)
        if not replica_problems:
            print(f"replica admits the replication role of a {len(LONG_STACK)}-character stack name")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
