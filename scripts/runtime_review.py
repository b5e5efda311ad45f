"""Checks of what the deployed function meets when it runs, which the
stack's deployment does not show: a function in a VPC reaches only what the
VPC routes to, and a replica keeps what the source's retention needs.

Each check takes an infra_review.Subject and returns a list of problems.
"""
import json
import pathlib
import re

from infra_render import load, render, resources_of
from infra_review import as_list, statements

ROOT = pathlib.Path(__file__).resolve().parent.parent

# How the function reaches each AWS service its code calls, from a VPC:
# the endpoint type and the service name the template must create.
ROUTES = {
    "s3": "Gateway",
    "kms": "Interface",
}
# Services the code calls that a VPC-attached function reaches only through
# a NAT, by design; the README's deployment section must say so.
NAT_ONLY = {
    # `audit --fix batch`, a manual invoke (the scheduled audit copies in
    # place through S3): S3 Control has no gateway endpoint.
    "s3control": "S3 Control",
}


def services_called(source=ROOT / "src"):
    """The AWS services the function's code calls: each aws_sdk_<service>
    crate its sources use."""
    called = set()
    for path in source.rglob("*.rs"):
        called.update(re.findall(r"\baws_sdk_([a-z0-9]+)::", path.read_text()))
    return called


def vpc_reaches_each_service(s):
    """Each service the function calls has a route from its VPC: the S3
    gateway endpoint, an interface endpoint with private DNS in the
    function's subnets, admitting the function on 443; or it is named as
    reached through a NAT only."""
    problems = []
    readme = (ROOT / "README.md").read_text()
    called = services_called()
    for scenario, stack in s.stacks.items():
        functions = resources_of(stack, "AWS::Lambda::Function")
        endpoints = resources_of(stack, "AWS::EC2::VPCEndpoint")
        groups = resources_of(stack, "AWS::EC2::SecurityGroup")
        for fn_name, function in functions.items():
            vpc = function.get("VpcConfig")
            if not vpc:
                continue
            for service in sorted(called):
                if service in NAT_ONLY:
                    if f"{NAT_ONLY[service]} through a NAT" not in readme:
                        problems.append(f"{scenario}: {fn_name} calls {service}, which no endpoint serves, and the README does not say it needs a NAT")
                    continue
                wanted = ROUTES.get(service)
                if wanted is None:
                    problems.append(f"{scenario}: {fn_name} calls {service}, for which this check knows no route")
                    continue
                found = [
                    (name, endpoint) for name, endpoint in endpoints.items()
                    if str(endpoint.get("ServiceName", "")).endswith(f".{service}")
                    and endpoint.get("VpcEndpointType", "Gateway") == wanted
                ]
                if not found:
                    problems.append(f"{scenario}: {fn_name} calls {service} from its VPC, and the stack creates no {wanted} endpoint for it: each call times out in private subnets")
                    continue
                if wanted == "Interface":
                    problems.extend(interface_problems(scenario, fn_name, vpc, found, groups))
    return problems


def interface_problems(scenario, fn_name, vpc, found, groups):
    """An interface endpoint serves the function: private DNS (the SDK uses
    the service's public name), the function's subnets, and a group that
    admits a group of the function's on 443."""
    problems = []
    function_groups = set(as_list(vpc.get("SecurityGroupIds", [])))
    for name, endpoint in found:
        if endpoint.get("PrivateDnsEnabled") is not True:
            problems.append(f"{scenario}: {name} has no private DNS: {fn_name} would still resolve the public endpoint")
        if as_list(endpoint.get("SubnetIds", [])) != as_list(vpc.get("SubnetIds", [])):
            problems.append(f"{scenario}: {name} is not in {fn_name}'s subnets")
        admitted = {
            rule.get("SourceSecurityGroupId")
            for group in as_list(endpoint.get("SecurityGroupIds", []))
            for rule in as_list(groups.get(group, {}).get("SecurityGroupIngress", []))
            if rule.get("IpProtocol") in ("tcp", "6") and int(rule.get("FromPort", -1)) <= 443 <= int(rule.get("ToPort", -1))
        }
        if not admitted & function_groups:
            problems.append(f"{scenario}: {name} admits none of {fn_name}'s security groups on 443")
    return problems


def key_policies_name_no_new_role(s):
    """No key policy names as its principal a role the same stack creates:
    KMS refuses a principal IAM does not show yet ("Policy contains a
    statement with one or more invalid principals"), and CloudFormation's
    KMS handler does not retry, so the stack rolls back. The account as
    principal, with the role in an `aws:PrincipalArn` condition, is safe."""
    problems = []
    for scenario, stack in s.stacks.items():
        roles = set(resources_of(stack, "AWS::IAM::Role"))
        for name, key in resources_of(stack, "AWS::KMS::Key").items():
            for st in statements(key.get("KeyPolicy", {})):
                for principal in as_list(st.get("Principal", {}).get("AWS", [])):
                    role = str(principal).removesuffix(".Arn")
                    if role in roles:
                        problems.append(f"{scenario}: {name} statement {st.get('Sid')} names {role}, created by the same stack, as its principal")
    return problems


def boundary_fits_any_account(boundary_path):
    """The permissions boundary names no account and no region: created as
    written in another account, a boundary of example values would refuse
    what the stack's roles need there (the on-failure destination's
    sqs:SendMessage first), and the deploy would fail."""
    if not boundary_path.exists():
        return []
    text = boundary_path.read_text()
    problems = [
        f"the permissions boundary names account {account}: created in another account it refuses what the roles need there"
        for account in sorted(set(re.findall(r"arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:(\d{12}):", text)))
    ]
    problems += [
        f"the permissions boundary names region {region}: in another region it refuses what the roles need there"
        for region in sorted(set(re.findall(r"arn:aws[a-z-]*:[a-z0-9-]+:([a-z]{2}-[a-z]+-\d):", text)))
    ]
    return problems


# How long a throttled invoke must be retried: an hour at the least, so
# that shards queued behind the account's concurrency quota get their turn.
THROTTLE_PATIENCE_SECONDS = 3600


def retried_for(retrier):
    """The seconds a Step Functions retrier waits over all its attempts
    (without jitter, which only shortens each wait)."""
    interval = retrier.get("IntervalSeconds", 1)
    rate = retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return sum(min(interval * rate**i, cap) for i in range(retrier.get("MaxAttempts", 3)))


def throttled_invokes_wait(s):
    """Each Lambda task of the sharded run retries a throttled invoke
    (Lambda.TooManyRequestsException) for an hour at the least: with more
    shards at once than the account's quota leaves, the Distributed Map's
    invokes are throttled, and three quick tries fail the shard."""
    problems = []
    for scenario, stack in s.stacks.items():
        for name, machine in resources_of(stack, "AWS::StepFunctions::StateMachine").items():
            definition = json.loads(machine["DefinitionString"])
            for state_name, state in tasks(definition):
                if "lambda:invoke" not in str(state.get("Resource", "")):
                    continue
                waits = [
                    retried_for(r) for r in state.get("Retry", [])
                    if "Lambda.TooManyRequestsException" in r.get("ErrorEquals", [])
                    or "States.ALL" in r.get("ErrorEquals", [])
                ]
                longest = max(waits, default=0)
                if longest < THROTTLE_PATIENCE_SECONDS:
                    problems.append(f"{scenario}: {name} task {state_name} retries a throttled invoke for {longest:.0f} s, not {THROTTLE_PATIENCE_SECONDS}")
    return problems


def tasks(definition):
    """Every state of a definition, nested Map processors included."""
    for name, state in definition.get("States", {}).items():
        yield name, state
        for nested in ("ItemProcessor", "Iterator"):
            if nested in state:
                yield from tasks(state[nested])


def replica_keeps_versions(replica_path):
    """With its defaults, the replica expires no version by age: S3
    replication never replicates the deletion of a version, so a replica
    snapshot older than the rule would miss every file changed since."""
    if replica_path is None or not replica_path.exists():
        return []
    template = load(replica_path)
    params = {"SourceAccountId": "123456789012"}
    stack = render(template, params, stack_name="s3-kms-sync-replica")
    problems = []
    for name, bucket in resources_of(stack, "AWS::S3::Bucket").items():
        for rule in bucket.get("LifecycleConfiguration", {}).get("Rules", []):
            expires = rule.get("NoncurrentVersionExpiration")
            if expires and rule.get("Status") == "Enabled":
                problems.append(f"replica {name} rule {rule.get('Id')} expires noncurrent versions after {expires.get('NoncurrentDays')} days by default")
    return problems
