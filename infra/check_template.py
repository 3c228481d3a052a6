"""Checks the synthesized stacks keep the promises of docs/deploy.md, reading only the templates.

    python infra/check_template.py infra/cdk.out

For every stack of the cloud assembly (sessions-dev and sessions-prod must both be there): the
table is the one of chalicelib/store/schema.py, on demand, with point-in-time recovery, TTL on its TTL
attribute and server-side encryption, retained (and deletion-protected) in prod only; each Lambda
function runs as a role of this stack whose only DynamoDB grant is exactly
chalicelib.store.iam.RUNTIME_IAM_ACTIONS on the table's ARN, nothing on "*" and no managed policy;
each function has SESSIONS_TABLE and SESSIONS_CURSOR_SECRET and a timeout under API Gateway's
29 s; the API stage is throttled; API Gateway's own answers are in the error shape of
chalicelib/shared/errors.py with Content-Type and X-Request-Id. Prints what it checked; exits 1 on the
first stack with failures, listing them all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.shared import errors  # noqa: E402
from chalicelib.store import iam, schema  # noqa: E402
from chalicelib.web.http import GATEWAY_METHODS  # noqa: E402
from chalicelib.web.stream import EVENT_FILTERS  # noqa: E402

STACKS = {"sessions-dev": False, "sessions-prod": True}  # stack -> table retained
GATEWAY_TIMEOUT_S = 29
CASCADES_FUNCTION = "Cascades"  # the stream's function: no gateway waits for it
LAMBDA_MAX_TIMEOUT_S = 900
# API Gateway's answers that must be in our shape: type -> (status, code); None: its own status.
GATEWAY_RESPONSES: dict[str, tuple[int | None, str | None]] = {
    "UNAUTHORIZED": (401, errors.Unauthorized.code),
    "ACCESS_DENIED": (403, None),
    "MISSING_AUTHENTICATION_TOKEN": (404, errors.NotFound.code),  # an unknown route: as the app says it
    "RESOURCE_NOT_FOUND": (404, errors.NotFound.code),
    "THROTTLED": (429, None),
    "REQUEST_TOO_LARGE": (413, errors.PayloadTooLarge.code),
    "INTEGRATION_TIMEOUT": (504, None),
    "DEFAULT_4XX": (None, None),
    "DEFAULT_5XX": (None, errors.ServiceError.code),
}


class Checks:
    def __init__(self, stack: str) -> None:
        self.stack, self.failures, self.passed = stack, [], 0

    def that(self, condition: bool, promise: str) -> bool:
        if condition:
            self.passed += 1
        else:
            self.failures.append(promise)
        return condition


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in resources.items() if resource.get("Type") == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _sample_body(template: str) -> Any:
    """The body API Gateway would send, with its message variable filled in as it fills it."""
    return json.loads(template.replace("$context.error.messageString", '"a message"'))


def check_table(c: Checks, resources: dict[str, Any], retained: bool) -> str | None:
    tables = _of_type(resources, "AWS::DynamoDB::Table")
    if not c.that(len(tables) == 1, f"one DynamoDB table (found {sorted(tables)})"):
        return None
    ((name, table),) = tables.items()
    props = table.get("Properties", {})
    definition = schema.table_definition("unused")
    for key in ("KeySchema", "AttributeDefinitions", "BillingMode"):
        c.that(props.get(key) == definition[key], f"table {key} is schema.table_definition's")
    c.that(props.get("BillingMode") == "PAY_PER_REQUEST", "table billed on demand (PAY_PER_REQUEST)")
    c.that("GlobalSecondaryIndexes" not in props and "LocalSecondaryIndexes" not in props, "table has no index")
    c.that(
        props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True,
        "point-in-time recovery on",
    )
    c.that(
        props.get("TimeToLiveSpecification") == {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True},
        f"TTL on {schema.TTL_ATTRIBUTE}",
    )
    c.that(props.get("SSESpecification", {}).get("SSEEnabled") is True, "server-side encryption on")
    policy = "Retain" if retained else "Delete"
    c.that(
        table.get("DeletionPolicy") == policy and table.get("UpdateReplacePolicy") == policy,
        f"table DeletionPolicy and UpdateReplacePolicy {policy}",
    )
    c.that(
        bool(props.get("DeletionProtectionEnabled")) == retained,
        f"table deletion protection {'on' if retained else 'off'}",
    )
    return name


def _statements(resources: dict[str, Any], role_name: str) -> list[dict[str, Any]]:
    """Every statement granted to the role: its inline policies and any AWS::IAM::Policy on it."""
    role = resources[role_name]["Properties"]
    found = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    for policy in _of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role_name} in policy["Properties"].get("Roles", []):
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def check_role(
    c: Checks, resources: dict[str, Any], role_name: str, statements: list[dict[str, Any]], table: str | None
) -> None:
    c.that(not resources[role_name]["Properties"].get("ManagedPolicyArns"), f"{role_name}: no managed policies")
    dynamodb = [s for s in statements if any(a.lower().startswith("dynamodb:") for a in _as_list(s["Action"]))]
    c.that(
        len(dynamodb) == 2,
        f"{role_name}: two DynamoDB statements, the table's and its stream's (found {len(dynamodb)})",
    )
    wanted = {
        "RUNTIME_IAM_ACTIONS on the table's ARN only": (iam.RUNTIME_IAM_ACTIONS, [{"Fn::GetAtt": [table, "Arn"]}]),
        "STREAM_IAM_ACTIONS on the stream's ARN only": (iam.STREAM_IAM_ACTIONS, [{"Fn::GetAtt": [table, "StreamArn"]}]),
    }
    for what, (actions, resources_wanted) in wanted.items():
        c.that(
            any(
                sorted(_as_list(s["Action"])) == sorted(actions) and _as_list(s["Resource"]) == resources_wanted
                for s in dynamodb
            ),
            f"{role_name}: exactly iam.{what}",
        )
    for statement in statements:
        actions = _as_list(statement["Action"])
        c.that(not any(a == "*" or a.endswith(":*") for a in actions), f"{role_name}: no wildcard action {actions}")
        c.that("*" not in _as_list(statement["Resource"]), f"{role_name}: no action on resource '*' {actions}")


def check_functions(c: Checks, resources: dict[str, Any], table: str | None) -> None:
    functions = _of_type(resources, "AWS::Serverless::Function") | _of_type(resources, "AWS::Lambda::Function")
    c.that("APIHandler" in functions, "the API handler function is there")
    c.that(not _of_type(resources, "AWS::IAM::ManagedPolicy"), "no managed policy resources")
    secrets = _of_type(resources, "AWS::SecretsManager::Secret")
    checked_roles: set[str] = set()
    for name, function in functions.items():
        props = function["Properties"]
        variables = props.get("Environment", {}).get("Variables", {})
        c.that(
            table is not None and variables.get("SESSIONS_TABLE") == {"Ref": table},
            f"{name}: SESSIONS_TABLE is the table's name",
        )
        secret = json.dumps(variables.get("SESSIONS_CURSOR_SECRET"))
        c.that(
            "{{resolve:secretsmanager:" in secret and any(f'{{"Ref": "{s}"}}' in secret for s in secrets),
            f"{name}: SESSIONS_CURSOR_SECRET is a dynamic reference to this stack's secret",
        )
        if name == CASCADES_FUNCTION:
            c.that(
                props.get("Timeout") == LAMBDA_MAX_TIMEOUT_S,
                f"{name}: timeout {LAMBDA_MAX_TIMEOUT_S} s (no gateway waits)",
            )
        else:
            c.that(0 < props.get("Timeout", 0) < GATEWAY_TIMEOUT_S, f"{name}: timeout under {GATEWAY_TIMEOUT_S} s")
        c.that(variables.get("SESSIONS_CASCADES") == "stream", f"{name}: SESSIONS_CASCADES is stream")
        c.that("Policies" not in props, f"{name}: no SAM policies (the role is ours)")
        role = props.get("Role")
        if not c.that(
            isinstance(role, dict) and role.get("Fn::GetAtt", [None])[0] in _of_type(resources, "AWS::IAM::Role"),
            f"{name}: runs as a role of this stack",
        ):
            continue
        role_name = role["Fn::GetAtt"][0]
        statements = _statements(resources, role_name)
        if role_name not in checked_roles:
            checked_roles.add(role_name)
            check_role(c, resources, role_name, statements, table)
        bedrock = variables.get("SESSIONS_MODEL_PROVIDER") == "bedrock"
        c.that(
            any(a.startswith("bedrock:") for s in statements for a in _as_list(s["Action"])) == bedrock,
            f"{role_name}: bedrock actions {'granted' if bedrock else 'absent'} "
            f"(SESSIONS_MODEL_PROVIDER {'is' if bedrock else 'is not'} bedrock)",
        )
        granted_logs = [
            r for s in statements if "logs:PutLogEvents" in _as_list(s["Action"]) for r in _as_list(s["Resource"])
        ]
        group = props.get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        c.that(
            group in _of_type(resources, "AWS::Logs::LogGroup") and {"Fn::GetAtt": [group, "Arn"]} in granted_logs,
            f"{name}: logs to its own log group, which its role may write to",
        )
        c.that(props.get("LoggingConfig", {}).get("LogFormat") == "JSON", f"{name}: logs in Lambda's JSON format")


def check_api(c: Checks, resources: dict[str, Any]) -> None:
    api = resources.get("RestAPI", {}).get("Properties", {})
    c.that(api.get("StageName") == "api", "API stage 'api'")
    throttles = [
        s for s in api.get("MethodSettings", []) if s.get("ResourcePath") == "/*" and s.get("HttpMethod") == "*"
    ]
    c.that(
        len(throttles) == 1
        and throttles[0].get("ThrottlingRateLimit", 0) > 0
        and throttles[0].get("ThrottlingBurstLimit", 0) > 0,
        "stage-wide throttling (rate and burst)",
    )
    # Every path but the catch-all takes every method API Gateway routes (the app answers the ones a
    # path lacks with 405), so API Gateway never answers a known path's method itself (docs/api.md).
    paths = api.get("DefinitionBody", {}).get("paths", {})
    c.that(len(paths) > 1, "the API has its paths")
    for path, methods in sorted(paths.items()):
        if not path.endswith("{proxy+}"):
            c.that({m.upper() for m in methods} >= set(GATEWAY_METHODS), f"{path}: every method routed to the app")
    answers = api.get("DefinitionBody", {}).get("x-amazon-apigateway-gateway-responses", {})
    for response_type, (status, code) in GATEWAY_RESPONSES.items():
        answer = answers.get(response_type)
        if not c.that(isinstance(answer, dict), f"gateway response {response_type}"):
            continue
        if status is not None:
            c.that(answer.get("statusCode") == str(status), f"{response_type}: status {status}")
        headers = answer.get("responseParameters", {})
        c.that(
            headers.get("gatewayresponse.header.Content-Type") == "'application/json'",
            f"{response_type}: Content-Type application/json",
        )
        c.that(
            headers.get("gatewayresponse.header.X-Request-Id") == "context.requestId",
            f"{response_type}: X-Request-Id is the request id",
        )
        try:
            body = _sample_body(answer.get("responseTemplates", {}).get("application/json", ""))
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) and set(body) == {"error"} else None
        c.that(
            isinstance(error, dict)
            and set(error) == {"code", "message", "details"}
            and isinstance(error["code"], str)
            and isinstance(error["message"], str)
            and error["details"] == [],
            f'{response_type}: body is {{"error": {{code, message, details: []}}}}',
        )
        if code is not None and isinstance(error, dict):
            c.that(error.get("code") == code, f"{response_type}: code {code}")


def check_stream(c: Checks, resources: dict[str, Any], table: str | None) -> None:
    """The table's stream feeds the cascades function: the view the handler reads, a filtered,
    retried, bisected mapping, an on-failure queue, and the role's grants on exactly those."""
    if table is None:
        return
    props = resources[table]["Properties"]
    c.that(
        props.get("StreamSpecification") == {"StreamViewType": schema.STREAM_VIEW_TYPE},
        f"table stream on, {schema.STREAM_VIEW_TYPE}",
    )
    mappings = _of_type(resources, "AWS::Lambda::EventSourceMapping")
    if not c.that(len(mappings) == 1, f"one event source mapping (found {sorted(mappings)})"):
        return
    ((_, mapping),) = mappings.items()
    m = mapping["Properties"]
    c.that(m.get("EventSourceArn") == {"Fn::GetAtt": [table, "StreamArn"]}, "the mapping reads the table's stream")
    c.that(m.get("FunctionName") == {"Ref": CASCADES_FUNCTION}, f"the mapping invokes {CASCADES_FUNCTION}")
    c.that(m.get("StartingPosition") == "TRIM_HORIZON", "the mapping starts at TRIM_HORIZON (nothing skipped)")
    c.that(0 < m.get("BatchSize", 0) <= 1000, "the mapping's batch size is set")
    c.that(m.get("BisectBatchOnFunctionError") is True, "a failed batch is bisected")
    c.that(0 < m.get("MaximumRetryAttempts", -1) <= 10, "a failed batch is retried, a bounded number of times")
    filters = [json.loads(f["Pattern"]) for f in m.get("FilterCriteria", {}).get("Filters", [])]
    c.that(filters == list(EVENT_FILTERS), "the mapping's filters are stream.EVENT_FILTERS")
    destination = m.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    queues = _of_type(resources, "AWS::SQS::Queue")
    queue = destination.get("Fn::GetAtt", [None])[0] if isinstance(destination, dict) else None
    if not c.that(queue in queues, "failures go to a queue of this stack"):
        return
    c.that(queues[queue]["Properties"].get("SqsManagedSseEnabled") is True, "the failure queue is encrypted")
    c.that(queues[queue]["Properties"].get("MessageRetentionPeriod") == 14 * 24 * 3600, "failures kept 14 days")
    role = resources[CASCADES_FUNCTION]["Properties"].get("Role", {}).get("Fn::GetAtt", [None])[0]
    statements = _statements(resources, role) if role in resources else []
    c.that(
        any(
            _as_list(s["Action"]) == ["sqs:SendMessage"] and _as_list(s["Resource"]) == [{"Fn::GetAtt": [queue, "Arn"]}]
            for s in statements
        ),
        f"{role}: sqs:SendMessage on the failure queue only",
    )
    c.that(
        not any(a.startswith("sqs:") and a != "sqs:SendMessage" for s in statements for a in _as_list(s["Action"])),
        f"{role}: no other SQS action",
    )


def check_outputs(c: Checks, template: dict[str, Any]) -> None:
    outputs = template.get("Outputs", {})
    c.that("TableName" in outputs, "output TableName")
    for name in _of_type(template["Resources"], "AWS::Serverless::Function"):
        if name != "APIHandler":
            c.that(
                any(o.get("Value") == {"Fn::GetAtt": [name, "Arn"]} for o in outputs.values()),
                f"output of {name}'s ARN",
            )


def check_stack(stack: str, template: dict[str, Any], retained: bool) -> Checks:
    c = Checks(stack)
    resources = template.get("Resources", {})
    table = check_table(c, resources, retained)
    check_functions(c, resources, table)
    check_stream(c, resources, table)
    check_api(c, resources)
    check_outputs(c, template)
    return c


def stack_templates(assembly: Path) -> dict[str, Path]:
    manifest = json.loads((assembly / "manifest.json").read_text())
    return {
        name: assembly / artifact["properties"]["templateFile"]
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }


def main(argv: list[str]) -> int:
    assembly = Path(argv[1] if len(argv) > 1 else ROOT / "infra" / "cdk.out")
    templates = stack_templates(assembly)
    failed, passed, failures = False, 0, 0
    for stack, retained in STACKS.items():
        if stack not in templates:
            print(f"FAIL {stack}: not in {assembly}")
            failed, failures = True, failures + 1
            continue
        c = check_stack(stack, json.loads(templates[stack].read_text()), retained)
        print(f"{'FAIL' if c.failures else 'ok  '} {stack}: {c.passed} checks passed, {len(c.failures)} failed")
        for failure in c.failures:
            print(f"     - {failure}")
        failed |= bool(c.failures)
        passed, failures = passed + c.passed, failures + len(c.failures)
    print(f"check_template: {passed} passed, {failures} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
