"""Checks for template defects that every linter passes and moto ignores.

Each check reads what CloudFormation would deploy (see infra_render) in a
few parameter scenarios and returns a list of problems. DEFECTS are the
review's findings: `check_infra.py --expect-defects DIR` proves that each
one fails on the template and deployer policy from before the review, kept
in tests/fixtures/infra-before-review/.
"""
import fnmatch
import json
import pathlib
import re

from infra_render import EXAMPLES, expand_sam, render, resources_of

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Parameter values, from the examples the iam/ files use where they have one.
EFS = {
    "EfsAccessPointArn": EXAMPLES["EfsAccessPointArn"],
    "EfsFileSystemId": EXAMPLES["EfsFileSystemId"],
    "SubnetIds": "subnet-1,subnet-2",
    "SecurityGroupIds": "sg-1",
    "VpcId": "vpc-1",
    "RouteTableIds": "rtb-1",
}
EVERYTHING = {
    **EFS,
    "AlarmEmail": "ops@example.com",
    "EnableInventory": "true",
    "CreateBatchOperationsRole": "true",
    "PreviousKmsKeyArns": ",".join(EXAMPLES["PreviousKmsKeyArns"]),
    "PermissionsBoundaryArn": "arn:aws:iam::123456789012:policy/s3-kms-sync-boundary",
    "ObjectLockMode": "GOVERNANCE",
    "ReplicaBucketArn": EXAMPLES["ReplicaBucketArn"],
    "ReplicaKmsKeyArn": EXAMPLES["ReplicaKmsKeyArn"],
    "ReplicaAccountId": "210987654321",
    "ReplicationTimeControl": "true",
    "ShardedRun": "true",
}
SCENARIOS = {"defaults": {}, "efs": EFS, "everything": EVERYTHING}
RULE_FUNCTIONS = {
    "Ref", "Condition", "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Fn::Contains",
    "Fn::EachMemberEquals", "Fn::EachMemberIn", "Fn::ValueOf", "Fn::ValueOfAll", "Fn::RefAll",
}
BOUNDED_IAM_WRITES = {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"}
KEY_WRITES = {"kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CreateGrant"}


class Subject:
    """A template (as written, expanded, and rendered per scenario) and the
    deployer policy that deploys it."""

    def __init__(self, template, deployer):
        self.template = template
        self.deployer = deployer
        self.expanded = expand_sam(template)
        self.stacks = {name: render(self.expanded, params) for name, params in SCENARIOS.items()}

    def each(self, resource_type):
        for scenario, stack in self.stacks.items():
            for name, properties in resources_of(stack, resource_type).items():
                yield scenario, name, properties


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(document):
    # cloud-radar renders an optional statement left out by AWS::NoValue as "".
    return [st for st in as_list(document.get("Statement", [])) if st != ""]


def alarm_topic_key(s):
    """1. CloudWatch can publish to the alarm topic."""
    problems = []
    for scenario, name, topic in s.each("AWS::SNS::Topic"):
        key = topic.get("KmsMasterKeyId")
        if key is None:
            continue
        resource = s.stacks[scenario]["Resources"].get(key)
        if resource is None or resource["Type"] != "AWS::KMS::Key":
            problems.append(f"{scenario}: topic {name} is under {key}, whose key policy cannot grant CloudWatch")
            continue
        granted = {
            action
            for st in statements(resource["Properties"]["KeyPolicy"])
            if st["Effect"] == "Allow" and "cloudwatch.amazonaws.com" in as_list(st.get("Principal", {}).get("Service", []))
            for action in as_list(st["Action"])
        }
        if not {"kms:Decrypt", "kms:GenerateDataKey*"} <= granted:
            problems.append(f"{scenario}: key {key} of topic {name} does not grant CloudWatch kms:Decrypt and kms:GenerateDataKey*")
    return problems


def no_reserved_concurrency_by_default(s):
    """2. Deploys in accounts with a low concurrency quota."""
    return [
        f"defaults: function {name} reserves {fn['ReservedConcurrentExecutions']} concurrent executions"
        for name, fn in resources_of(s.stacks["defaults"], "AWS::Lambda::Function").items()
        if "ReservedConcurrentExecutions" in fn
    ]


def schedule_names(s):
    """3. Schedule names are per stack and within the deployer's grant."""
    granted = [
        r.split(":schedule/", 1)[1]
        for st in statements(s.deployer)
        for r in as_list(st["Resource"])
        if ":schedule/" in r
    ]
    other = render(s.expanded, {}, stack_name="another-stack")
    problems = []
    for _, name, schedule in s.each("AWS::Scheduler::Schedule"):
        full = f"{schedule.get('GroupName', 'default')}/{schedule.get('Name', name)}"
        if not any(fnmatch.fnmatchcase(full, pattern) for pattern in granted):
            problems.append(f"schedule {name} is named {full}, outside the deployer's {granted}")
    for name, schedule in resources_of(other, "AWS::Scheduler::Schedule").items():
        mine = s.stacks["defaults"]["Resources"][name]["Properties"]
        if schedule.get("Name") == mine.get("Name"):
            problems.append(f"schedule {name} has the same name {schedule.get('Name')!r} in every stack")
    return problems


def rule_functions(s):
    """4. Rules use only Ref and the rule functions."""
    problems = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if (key.startswith("Fn::") or key in ("Ref", "Condition")) and key not in RULE_FUNCTIONS:
                    problems.append(f"{where} uses {key}, which CloudFormation does not allow in Rules")
                walk(value, where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    for name, rule in s.template.get("Rules", {}).items():
        walk(rule, f"rule {name}")
    return problems


def efs_read_only_policy(s):
    """5. The stack hands the operator the file system policy that makes the
    mount read-only (without one, EFS lets any client that connects write)."""
    outputs = s.stacks["efs"]["Outputs"]
    policy = outputs.get("EfsFileSystemPolicy", {}).get("Value")
    if policy is None:
        return ["efs: no EfsFileSystemPolicy output for the operator to apply"]
    document = json.loads(policy)
    problems = []
    for st in statements(document):
        principal = as_list(st.get("Principal", {}).get("AWS", []))
        if st["Effect"] == "Allow" and any("FunctionRole" in p for p in principal):
            if set(as_list(st["Action"])) != {"elasticfilesystem:ClientMount"}:
                problems.append(f"efs: the file system policy grants the function {st['Action']}")
            if "elasticfilesystem:AccessPointArn" not in json.dumps(st.get("Condition", {})):
                problems.append("efs: the file system policy does not tie the function to its access point")
    if not any("FunctionRole" in json.dumps(st.get("Principal")) for st in statements(document)):
        problems.append("efs: the file system policy does not name the function's role")
    return problems


def gateway_endpoint_policy(s):
    """6a. The S3 gateway endpoint admits only the stack's buckets."""
    problems = []
    for scenario, name, endpoint in s.each("AWS::EC2::VPCEndpoint"):
        document = endpoint.get("PolicyDocument")
        if document is None:
            problems.append(f"{scenario}: endpoint {name} has no policy (full access to every bucket)")
            continue
        for st in statements(document):
            for resource in as_list(st.get("Resource", [])):
                if re.fullmatch(r"(arn:aws:s3:::)?\*(/\*)?", resource):
                    problems.append(f"{scenario}: endpoint {name} admits {resource}")
    return problems


def route_tables_rule(s):
    """6b. VpcId without RouteTableIds is refused."""
    for rule in s.template.get("Rules", {}).values():
        condition = json.dumps(rule.get("RuleCondition", {}))
        asserts = json.dumps(rule.get("Assertions", []))
        if '"VpcId"' in condition and '"RouteTableIds"' in asserts:
            return []
    return ["no rule refuses VpcId without RouteTableIds"]


def no_managed_policies(s):
    """6c. Roles carry only the inline policies kept in iam/."""
    return [
        f"{scenario}: role {name} has managed policies {role['ManagedPolicyArns']}"
        for scenario, name, role in s.each("AWS::IAM::Role")
        if role.get("ManagedPolicyArns")
    ]


def encryption_denies(s):
    """7. The bucket policy denies only a present, wrong encryption header."""
    problems = []
    for scenario, name, policy in s.each("AWS::S3::BucketPolicy"):
        for st in statements(policy["PolicyDocument"]):
            condition = st.get("Condition", {})
            if st["Effect"] != "Deny" or "s3:x-amz-server-side-encryption" not in json.dumps(condition):
                continue
            if any(op.endswith("IfExists") for op in condition):
                problems.append(f"{scenario}: {name} {st.get('Sid')} uses {list(condition)}: it denies requests without the header")
            elif "Null" not in condition:
                problems.append(f"{scenario}: {name} {st.get('Sid')} does not require the header to be present (Null: false)")
    return problems


def deployer_cannot_escalate(s):
    """8a. The deployer creates roles only within the permissions boundary, and
    changes only the stack's own keys."""
    problems = []
    for st in statements(s.deployer):
        if st["Effect"] != "Allow":
            continue
        actions = set(as_list(st["Action"]))
        condition = json.dumps(st.get("Condition", {}))
        if actions & BOUNDED_IAM_WRITES and "iam:PermissionsBoundary" not in condition:
            problems.append(f"deployer {st['Sid']} grants {sorted(actions & BOUNDED_IAM_WRITES)} without an iam:PermissionsBoundary condition")
        if "iam:AttachRolePolicy" in actions and "iam:PolicyARN" not in condition:
            problems.append(f"deployer {st['Sid']} may attach any managed policy")
        if actions & KEY_WRITES and "aws:ResourceTag/" not in condition:
            problems.append(f"deployer {st['Sid']} grants {sorted(actions & KEY_WRITES)} on keys not tagged for the stack")
    return problems


def roles_within_boundary(s):
    """8b. With PermissionsBoundaryArn set, every role the stack creates has it."""
    problems = [
        f"everything: role {name} has no permissions boundary"
        for scenario, name, role in s.each("AWS::IAM::Role")
        if scenario == "everything" and not role.get("PermissionsBoundary")
    ]
    return problems or ([] if "PermissionsBoundaryArn" in s.template["Parameters"] else ["no PermissionsBoundaryArn parameter"])


def alarms_by_metric(s):
    return {
        alarm.get("MetricName"): alarm
        for _, _, alarm in s.each("AWS::CloudWatch::Alarm")
        if alarm.get("Namespace") == "S3KmsSync"
    }


def heartbeat_alarm(s):
    """9a. A run that never completes alarms."""
    alarm = alarms_by_metric(s).get("RunsCompleted")
    if alarm is None or alarm.get("TreatMissingData") != "breaching":
        return ["no alarm on RunsCompleted that treats missing data as breaching"]
    return []


def stall_alarms(s):
    """9b. Runs that stop early or find the lock held alarm."""
    alarms = alarms_by_metric(s)
    return [f"no alarm on {metric}" for metric in ("RunsIncomplete", "RunsLockHeld") if metric not in alarms]


def lock_lifecycle(s):
    """10a. Lock versions and delete markers expire."""
    for _, _, bucket in s.each("AWS::S3::Bucket"):
        for rule in bucket.get("LifecycleConfiguration", {}).get("Rules", []):
            prefix = rule.get("Prefix") or rule.get("Filter", {}).get("Prefix", "")
            if prefix.endswith("_manifests/lock.json") and rule.get("ExpiredObjectDeleteMarker") and rule.get("NoncurrentVersionExpiration"):
                return []
    return ["no lifecycle rule expires the lock's delete markers and noncurrent versions"]


def service_trust_source_account(s):
    """10b. Every role a service assumes is bound to this account."""
    problems = []
    for scenario, name, role in s.each("AWS::IAM::Role"):
        for st in statements(role["AssumeRolePolicyDocument"]):
            if "Service" in st.get("Principal", {}) and "aws:SourceAccount" not in json.dumps(st.get("Condition", {})):
                problems.append(f"{scenario}: role {name} trusts {st['Principal']['Service']} from any account")
    return sorted(set(problems))


def log_retention(s):
    """10c. Logs are kept a year (FSBP CloudWatch.16)."""
    days = s.template["Parameters"].get("LogRetentionDays", {}).get("Default", 0)
    return [] if int(days) >= 365 else [f"log retention defaults to {days} days, under 365"]


def log_group_arn(s):
    """10d. A log group's Arn already ends in ':*'; appending another is wrong."""
    groups = {name for name, r in s.expanded["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    text = json.dumps(s.expanded)
    return [f"${{{g}.Arn}}:* appends a second ':*'" for g in groups if f"${{{g}.Arn}}:*" in text]


DEFECTS = [
    ("1", alarm_topic_key), ("2", no_reserved_concurrency_by_default), ("3", schedule_names),
    ("4", rule_functions), ("5", efs_read_only_policy), ("6a", gateway_endpoint_policy),
    ("6b", route_tables_rule), ("6c", no_managed_policies), ("7", encryption_denies),
    ("8a", deployer_cannot_escalate), ("8b", roles_within_boundary), ("9a", heartbeat_alarm),
    ("9b", stall_alarms), ("10a", lock_lifecycle), ("10b", service_trust_source_account),
    ("10c", log_retention), ("10d", log_group_arn),
]


def emitted_metrics():
    """Metric names the code emits in EMF documents."""
    names = set()
    for path in (ROOT / "src").rglob("*.rs"):
        names.update(re.findall(r'\(\s*"([A-Z][A-Za-z]+)",\s*"(?:Count|Bytes|Milliseconds)"', path.read_text()))
    return names


def alarms_watch_emitted_metrics(s):
    """Every alarm on this tool's namespace watches a metric the code emits."""
    emitted = emitted_metrics()
    return [f"an alarm watches {m}, which the code never emits" for m in alarms_by_metric(s) if m not in emitted]


def replication_is_kms_aware(s):
    """Replication opts SSE-KMS objects in, names the replica key, and its
    role's KMS grants are bound to S3 and to the buckets' encryption context."""
    problems = []
    for _, name, bucket in s.each("AWS::S3::Bucket"):
        for rule in bucket.get("ReplicationConfiguration", {}).get("Rules", []):
            criteria = rule.get("SourceSelectionCriteria", {}).get("SseKmsEncryptedObjects", {})
            if criteria.get("Status") != "Enabled":
                problems.append(f"bucket {name} rule {rule.get('Id')}: SSE-KMS objects are not opted in, so none replicate")
            if not rule["Destination"].get("EncryptionConfiguration", {}).get("ReplicaKmsKeyID"):
                problems.append(f"bucket {name} rule {rule.get('Id')}: no ReplicaKmsKeyID")
    for _, name, policy in s.each("AWS::IAM::Policy"):
        for st in statements(policy["PolicyDocument"]):
            actions = set(as_list(st["Action"]))
            if name.startswith("Replication") and actions & {"kms:Decrypt", "kms:Encrypt"}:
                condition = json.dumps(st.get("Condition", {}))
                if "kms:ViaService" not in condition or "kms:EncryptionContext:aws:s3:arn" not in condition:
                    problems.append(f"{name} {st.get('Sid')}: KMS grant without kms:ViaService and the encryption context")
    return problems


def one_backup_schedule(s):
    """With a source (EFS), exactly one schedule starts backups: the
    function's, or with ShardedRun the state machine's, never both (they
    would race for the lock). Without one, no schedule is enabled: each run
    would fail."""
    problems = []
    for scenario, stack in s.stacks.items():
        schedules = resources_of(stack, "AWS::Scheduler::Schedule").values()
        enabled = [str(x.get("Name")) for x in schedules if x.get("State", "ENABLED") != "DISABLED"]
        backups = [name for name in enabled if name.endswith("backup")]
        has_source = bool(SCENARIOS[scenario].get("EfsAccessPointArn"))
        if has_source and len(backups) != 1:
            problems.append(f"{scenario}: backup schedules enabled: {backups}")
        if not has_source and enabled:
            problems.append(f"{scenario}: no source, yet schedules are enabled: {enabled}")
    return problems


def denies(statement, principal, action, resource):
    """Whether a Deny statement applies to `principal` doing `action` on
    `resource`: enough of IAM's evaluation for the bucket policy's manifest
    deny (wildcards in actions, Resource and NotResource; ArnEquals and
    ArnNotEquals on aws:PrincipalArn). A condition it cannot evaluate counts
    as not met; check_iam_cases.py evaluates everything else."""
    if statement["Effect"] != "Deny":
        return False
    if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(statement["Action"])):
        return False
    if "NotResource" in statement:
        if any(fnmatch.fnmatchcase(resource, r) for r in as_list(statement["NotResource"])):
            return False
    elif not any(fnmatch.fnmatchcase(resource, r) for r in as_list(statement["Resource"])):
        return False
    for operator, pairs in statement.get("Condition", {}).items():
        for key, values in pairs.items():
            values = [v for v in as_list(values) if v != ""]
            if key != "aws:PrincipalArn" or operator not in ("ArnEquals", "ArnNotEquals"):
                return False
            if (principal in values) != (operator == "ArnEquals"):
                return False
    return True


def grantees(key_policy, action):
    """The AWS principals a key policy's Allow statements give `action`: a
    statement's principal, or the principals its `aws:PrincipalArn`
    condition narrows it to."""
    found = set()
    for st in statements(key_policy):
        if st["Effect"] != "Allow":
            continue
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(st["Action"])):
            narrowed = [
                arn
                for test in ("ArnEquals", "StringEquals")
                for arn in as_list(st.get("Condition", {}).get(test, {}).get("aws:PrincipalArn", []))
            ]
            found.update(narrowed or as_list(st.get("Principal", {}).get("AWS", [])))
    return found


def signing_key_policy(s):
    """Only the function, which writes every manifest (a sharded run's merge
    included), may sign with the manifest key, by digest only; the account
    may not, so no IAM policy can grant Sign; readers may fetch the public
    key; and the function is configured with it."""
    problems = []
    for scenario, name, key in s.each("AWS::KMS::Key"):
        if key.get("KeyUsage") != "SIGN_VERIFY":
            continue
        if key.get("KeySpec") != "ECC_NIST_P256":
            problems.append(f"{scenario}: {name} is {key.get('KeySpec')}, not ECC_NIST_P256")
        policy = key["KeyPolicy"]
        signers = grantees(policy, "kms:Sign")
        if signers != {"FunctionRole.Arn"}:
            problems.append(f"{scenario}: {name} lets {sorted(signers)} sign, not the function's role alone")
        for st in statements(policy):
            if st["Effect"] == "Allow" and "kms:Sign" in as_list(st["Action"]) \
                    and "FunctionRole.Arn" in grantees({"Statement": [st]}, "kms:Sign"):
                if st.get("Condition", {}).get("StringEquals", {}).get("kms:MessageType") != "DIGEST":
                    problems.append(f"{scenario}: {name} lets the function sign raw messages, not only digests")
        # The function's own policy grants GetPublicKey where the account may.
        fetchers = grantees(policy, "kms:GetPublicKey")
        if "FunctionRole.Arn" not in fetchers and not any(re.fullmatch(r"arn:aws:iam::\d{12}:root", f) for f in fetchers):
            problems.append(f"{scenario}: {name} does not let the function fetch its public key")
        for _, fn_name, function in s.each("AWS::Lambda::Function"):
            configured = function.get("Environment", {}).get("Variables", {}).get("SYNC_SIGNING_KEY_ID")
            if configured != f"{name}.Arn":
                problems.append(f"{scenario}: {fn_name} signs with {configured!r}, not {name}")
    if not any(key.get("KeyUsage") == "SIGN_VERIFY" for _, _, key in s.each("AWS::KMS::Key")):
        problems.append("no SIGN_VERIFY key signs the manifests")
    return problems


def manifest_folder_deny(s):
    """The bucket policy keeps everyone but the manifest writers from writing
    or deleting under <prefix>/_manifests/, and blocks none of the writers,
    the function's data objects, Inventory delivery or replication."""
    problems = []
    prefix = EXAMPLES["Prefix"]
    manifest = f"BackupBucket.Arn/{prefix}/_manifests/20261202T000000.000Z-run.json"
    lock = f"BackupBucket.Arn/{prefix}/_manifests/lock.json"
    data = f"BackupBucket.Arn/{prefix}/reports/q3.xlsx"
    stranger = "arn:aws:iam::123456789012:role/uploader"
    writes = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion")
    for scenario, name, policy in s.each("AWS::S3::BucketPolicy"):
        if policy.get("Bucket") != "BackupBucket":
            continue
        resources = s.stacks[scenario]["Resources"]
        writers = ["FunctionRole.Arn"] + (["BatchOperationsRole.Arn"] if "BatchOperationsRole" in resources else [])
        sts = statements(policy["PolicyDocument"])

        def denied(principal, action, resource):
            return any(denies(st, principal, action, resource) for st in sts)

        for action in writes:
            if not denied(stranger, action, manifest):
                problems.append(f"{scenario}: {name} lets any principal {action} a manifest")
            for writer in writers:
                for resource in (manifest, lock, data):
                    if denied(writer, action, resource):
                        problems.append(f"{scenario}: {name} denies {writer} {action} on {resource}")
        if "InventoryBucket" in resources and denied("s3.amazonaws.com", "s3:PutObject", "InventoryBucket.Arn/inventory/x"):
            problems.append(f"{scenario}: {name} blocks S3 Inventory delivery")
        if "ReplicationRole" in resources:
            for action in ("s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"):
                if denied("ReplicationRole.Arn", action, manifest):
                    problems.append(f"{scenario}: {name} keeps replication from reading {action} on manifests")
    return problems
