"""Static checks of the template and the IAM policies in iam/.

1. parliament finds nothing in any policy beyond the reviewed findings in
   iam/accepted-findings.yaml.
2. Each policy file is, in substance, the policy the template gives a role:
   same statements, actions and conditions, and the same resources once the
   template's references are replaced by the example values the files use
   (attributes as CloudFormation returns them). So the two cannot drift apart.
3. The template is free of the defects in infra_review.DEFECTS, judged on
   what CloudFormation would deploy.

Exit status 0 when all hold; prints each problem otherwise.

With --expect-defects DIR, it instead proves that each defect check fails on
DIR/template.yaml and DIR/deployer-policy.json (the state before the review).
"""
import argparse
import json
import re
import pathlib
import sys

import yaml
from parliament import analyze_policy_string

import deploy_review
import infra_review
import runtime_review
from infra_render import EXAMPLES, load

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Template resource → policy file it must match (an inline policy of a role
# is named by the role).
# The EFS statements are part of FunctionPolicy, behind !If UseEfs (the
# function must depend on them), and documented in a file of their own.
POLICIES = {
    "FunctionPolicy": ["iam/function-policy.json", "iam/function-efs-policy.json"],
    "BatchOperationsPolicy": "iam/batch-operations-policy.json",
    "ReplicationPolicy": "iam/replication-policy.json",
    "SchedulerRole": "iam/scheduler-policy.json",
    "ShardedRunRole": "iam/sharded-run-policy.json",
}


def resolve(node, names=EXAMPLES):
    """Evaluates the intrinsics of a policy, taking the first branch of each
    Fn::If: the created resource, the optional statement present."""
    if isinstance(node, list):
        return [resolve(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (function, argument), = node.items()
        if function == "Ref":
            return names[argument]
        if function == "Fn::GetAtt":
            name = argument if isinstance(argument, str) else ".".join(argument)
            return names[name]
        if function == "Fn::If":
            return resolve(argument[1], names)
        if function == "Fn::Select":
            return resolve(argument[1], names)[int(argument[0])]
        if function == "Fn::Split":
            return resolve(argument[1], names).split(argument[0])
        if function == "Fn::Sub":
            text, local = (argument, {}) if isinstance(argument, str) else argument
            scope = dict(names)
            scope.update({k: resolve(v, names) for k, v in local.items()})
            for name, value in scope.items():
                if isinstance(value, str):
                    text = text.replace("${" + name + "}", value)
            if "${" in text:
                raise ValueError(f"unresolved reference in {text!r}")
            return text
    return {key: resolve(value, names) for key, value in node.items()}


def normalise(statement):
    """Order-free form of a statement: single values become sorted lists."""
    def as_list(value):
        return sorted(value) if isinstance(value, list) else [value]

    out = dict(statement)
    for key in ("Action", "Resource"):
        if key in out:
            out[key] = as_list(out[key])
    if "Condition" in out:
        out["Condition"] = {
            operator: {k: as_list(v) for k, v in pairs.items()}
            for operator, pairs in out["Condition"].items()
        }
    return out


def check_schedule_input(template):
    """Each schedule must send a payload of a sample's form: the sync schedule
    that of events/scheduled.json, a command's schedule its events/ sample."""
    sample = json.loads((ROOT / "events" / "scheduled.json").read_text())
    events = template["Resources"]["BackupFunction"]["Properties"]["Events"]
    problems = []
    defaults = {
        name: str(parameter.get("Default", ""))
        for name, parameter in template.get("Parameters", {}).items()
    }
    for name, event in events.items():
        given = event["Properties"].get("Input", "null")
        if isinstance(given, dict) and "Fn::Sub" in given:
            # A payload built from parameters: checked with their defaults.
            given = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], given["Fn::Sub"])
        sent = json.loads(given)
        if isinstance(sent, dict) and "command" in sent:
            command_sample = ROOT / "events" / f"{sent['command']}.json"
            if not command_sample.exists() or json.loads(command_sample.read_text()) != sent:
                problems.append(f"schedule {name} sends {sent!r}, not events/{sent['command']}.json")
            else:
                print(f"schedule {name} sends events/{sent['command']}.json")
            continue
        if not isinstance(sent, dict) or not set(sent) <= set(sample):
            problems.append(f"schedule {name} sends {sent!r}, not the form of events/scheduled.json")
        elif sent["detail-type"] != sample["detail-type"] or "detail" not in sent:
            problems.append(f"schedule {name} sends {sent!r}, which is not a scheduled-event envelope")
        else:
            print(f"schedule {name} sends the form of events/scheduled.json")
    return problems


def policy_document(resource):
    properties = resource["Properties"]
    if "PolicyDocument" in properties:
        return properties["PolicyDocument"]
    (policy,) = properties["Policies"]
    return policy["PolicyDocument"]


def check_policies(template):
    problems = []
    accepted = yaml.safe_load((ROOT / "iam" / "accepted-findings.yaml").read_text())

    def is_accepted(file_name, finding):
        # An entry with a detail accepts only the finding that names it.
        return any(
            a["file"] == file_name and a["issue"] == finding.issue
            and a.get("detail", "") in json.dumps(finding.detail)
            for a in accepted
        )

    for path in sorted((ROOT / "iam").glob("*.json")):
        findings = analyze_policy_string(path.read_text(), str(path)).findings
        new = [f for f in findings if not is_accepted(path.name, f)]
        for finding in new:
            problems.append(f"parliament: {path.name}: {finding.issue}: {finding.detail}")
        print(f"parliament {path.relative_to(ROOT)}: {len(new)} findings ({len(findings) - len(new)} accepted in iam/accepted-findings.yaml)")

    for resource, file_names in POLICIES.items():
        document = policy_document(template["Resources"][resource])
        from_template = [normalise(s) for s in resolve(document["Statement"])]
        file_names = file_names if isinstance(file_names, list) else [file_names]
        from_file = [
            normalise(s)
            for file_name in file_names
            for s in json.loads((ROOT / file_name).read_text())["Statement"]
        ]
        file_name = " + ".join(file_names)
        if from_template != from_file:
            problems.append(
                f"{file_name} differs from the template's {resource}:\n"
                f"  template: {json.dumps(from_template, sort_keys=True)}\n"
                f"  file:     {json.dumps(from_file, sort_keys=True)}"
            )
        else:
            print(f"{file_name} matches the template's {resource} ({len(from_file)} statements)")
    return problems


def review(template_path, deployer_path):
    """The problems each defect check finds, by check."""
    subject = infra_review.Subject(load(template_path), json.loads(deployer_path.read_text()))
    checks = infra_review.DEFECTS + [
        ("metrics", infra_review.alarms_watch_emitted_metrics),
        ("replication", infra_review.replication_is_kms_aware),
        ("one backup schedule", infra_review.one_backup_schedule),
        ("signing key", infra_review.signing_key_policy),
        ("manifest folder", infra_review.manifest_folder_deny),
    ] + deploy_review.CHECKS + runtime_checks(template_path.parent)
    return {label: check(subject) for label, check in checks}, subject


def runtime_checks(directory):
    """The checks of what the deployed function meets when it runs, over
    the templates in `directory` (and its boundary, kept beside them in a
    fixture or under iam/)."""
    def boundary():
        beside = directory / "permissions-boundary.json"
        return beside if beside.exists() else directory / "iam" / "permissions-boundary.json"

    return [
        ("vpc routes", runtime_review.vpc_reaches_each_service),
        ("key principals", runtime_review.key_policies_name_no_new_role),
        ("throttled shards", runtime_review.throttled_invokes_wait),
        ("replica retention", lambda _: runtime_review.replica_keeps_versions(directory / "replica.yaml")),
        ("boundary accounts", lambda _: runtime_review.boundary_fits_any_account(boundary())),
    ]


# The checks each fixture's template must fail, by fixture, and what a
# check's problems must name there (the review's defects).
DEFECTS_OF = {
    "infra-before-deploy-review": deploy_review.CHECKS,
    "infra-before-runtime-review": runtime_checks(ROOT),
}
EVIDENCE = {
    "infra-before-deploy-review": {
        "deployer handlers": ["elasticfilesystem:DescribeMountTargets", "s3:DeleteBucket"],
        "vpc ordering": ["FunctionEfsPolicy"],
        "bucket deletion": ["InventoryBucket"],
    },
    "infra-before-runtime-review": {
        "vpc routes": ["calls kms"],
        "key principals": ["OnlyTheBackupSignsManifests names FunctionRole"],
        "boundary accounts": ["account 123456789012", "region eu-west-1"],
        "throttled shards": ["task Shard retries a throttled invoke for 14 s"],
        "replica retention": ["ExpireNoncurrentVersions"],
    },
}


def expect_defects(directory):
    """Each defect check must fail on the template from before its review:
    DIR's README names the review (the first one's checks are DEFECTS)."""
    found, _ = review(directory / "template.yaml", directory / "deployer-policy.json")
    expected = [label for label, _ in DEFECTS_OF.get(directory.name, infra_review.DEFECTS)]
    missed = [label for label in expected if not found[label]]
    for label in expected:
        problems = found[label]
        shown = problems[:1]
        for evidence in EVIDENCE.get(directory.name, {}).get(label, []):
            named = [p for p in problems if evidence in p]
            if not named:
                missed.append(f"{label} ({evidence})")
            shown = named[:1] if named else shown
            print(f"defect {label}: {named[0] if named else f'NOTHING NAMES {evidence}'}")
        if label not in EVIDENCE.get(directory.name, {}):
            print(f"defect {label}: {shown[0] if shown else 'NOT FOUND'}")
    if missed:
        print(f"checks that do not fail on {directory}: {missed}", file=sys.stderr)
    return 1 if missed else 0


def statement(template, resource, document, sid):
    """The statement `sid` of a resource's policy document, as written."""
    properties = template["Resources"][resource]["Properties"]
    return next(st for st in properties[document]["Statement"] if st.get("Sid") == sid)


def prove_trust_checks_fail(template_path, deployer_path):
    """The signing-key and manifest-folder checks each fail on a template
    changed to break what they guard. Returns the problems of this proof."""
    def administrators_sign(t):
        statement(t, "SigningKey", "KeyPolicy", "AdministratorsManageButDoNotSign")["Action"].append("kms:Sign")

    def function_denied(t):
        st = statement(t, "BackupBucketPolicy", "PolicyDocument", "OnlyManifestWritersWriteManifests")
        st["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].pop(0)

    def no_deny(t):
        document = t["Resources"]["BackupBucketPolicy"]["Properties"]["PolicyDocument"]
        document["Statement"] = [st for st in document["Statement"] if st.get("Sid") != "OnlyManifestWritersWriteManifests"]

    mutants = {
        "signing key": administrators_sign,
        "manifest folder": [function_denied, no_deny],
    }
    problems = []
    deployer = json.loads(deployer_path.read_text())
    for label, mutations in mutants.items():
        for mutate in mutations if isinstance(mutations, list) else [mutations]:
            template = load(template_path)
            mutate(template)
            subject = infra_review.Subject(template, deployer)
            check = {"signing key": infra_review.signing_key_policy, "manifest folder": infra_review.manifest_folder_deny}[label]
            found = check(subject)
            if found:
                print(f"check {label} fails on a template where {mutate.__name__.replace('_', ' ')}: {found[0]}")
            else:
                problems.append(f"check {label} passes a template where {mutate.__name__.replace('_', ' ')}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect-defects", type=pathlib.Path)
    args = parser.parse_args()
    if args.expect_defects:
        return expect_defects(args.expect_defects)

    template = load(ROOT / "template.yaml")
    problems = check_policies(template)
    problems.extend(check_schedule_input(template))
    found, _ = review(ROOT / "template.yaml", ROOT / "iam" / "deployer-policy.json")
    for label, found_problems in found.items():
        problems.extend(f"defect {label}: {p}" for p in found_problems)
        if not found_problems:
            print(f"template check {label}: ok")

    problems.extend(prove_trust_checks_fail(ROOT / "template.yaml", ROOT / "iam" / "deployer-policy.json"))

    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
