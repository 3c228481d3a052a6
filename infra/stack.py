"""The sessions service on AWS: one stack per stage (docs/deploy.md says why each setting).

The stack holds the DynamoDB table (built from chalicelib/store/schema.py's one definition), the
cursor-signing secret, the Lambda role (written here, least privilege: Chalice's generated
policy is switched off), one log group per function, and the Chalice app itself, packaged by
chalice.cdk.Chalice from the repository root and included as its SAM template, to which the API
Gateway throttling and gateway responses are added.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from chalice.cdk import Chalice
from constructs import Construct

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway_responses import gateway_responses  # noqa: E402

from chalicelib.store import schema  # noqa: E402
from chalicelib.store.iam import RUNTIME_IAM_ACTIONS, STREAM_IAM_ACTIONS  # noqa: E402
from chalicelib.web.stream import EVENT_FILTERS  # noqa: E402

API_STAGE = "api"  # the path prefix, as in .chalice/config.json
LAMBDA_MEMORY_MB = 512  # CPU scales with memory: pydantic and JSON work are CPU-bound
# API Gateway gives up on an integration after 29 s. The code bounds one DynamoDB call to 12 s and a
# cascade to 15 s (docs/reliability.md), a chat's model calls to SESSIONS_MODEL_TIMEOUT (20 s);
# 28 s lets Lambda stop (and log) a stuck invocation itself just before the gateway answers 504.
LAMBDA_TIMEOUT_S = 28
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
# The stream's function (app.py `cascades`): no gateway waits for it. Its batch has 12 minutes
# (chalicelib/rules/cascades.py), the function 15, Lambda's most.
CASCADES_FUNCTION = "Cascades"
CASCADES_TIMEOUT_S = 900
CASCADES_BATCH_SIZE = 100
CASCADES_RETRIES = 5  # then bisected batches, then the record goes to the on-failure queue


@dataclass(frozen=True)
class Stage:
    name: str
    retain: bool  # table, secret and logs outlive the stack
    log_retention: logs.RetentionDays
    throttle_rate: float  # requests per second, steady, for the whole API stage
    throttle_burst: int  # requests at once (token bucket size)


STAGES = {
    "dev": Stage("dev", retain=False, log_retention=logs.RetentionDays.TWO_WEEKS, throttle_rate=20, throttle_burst=40),
    "prod": Stage(
        "prod", retain=True, log_retention=logs.RetentionDays.THREE_MONTHS, throttle_rate=100, throttle_burst=200
    ),
}


def context(scope: Construct, stage: str, key: str, default: Any = None) -> Any:
    """A CDK context value, `<stage>:<key>` first, then `<key>` (`cdk deploy -c prod:throttle_rate=50`)."""
    for name in (f"{stage}:{key}", key):
        value = scope.node.try_get_context(name)
        if value is not None and value != "":
            return value
    return default


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _struct(item: dict[str, Any]) -> dict[str, Any]:
    """A CreateTable structure (`{"AttributeName": ...}`) as CDK's struct keywords (`attribute_name`)."""
    return {_snake(key): value for key, value in item.items()}


class SessionsStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: Stage, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage
        removal = cdk.RemovalPolicy.RETAIN if stage.retain else cdk.RemovalPolicy.DESTROY

        self.table = self._table(removal)
        self.cursor_secret = secretsmanager.Secret(
            self,
            "CursorSecret",
            description=f"HMAC key signing the sessions service's list cursors ({stage.name})",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
            removal_policy=removal,
        )

        # The role's one inline policy; the log statements are added once the functions are known.
        self.policy = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="SessionsTable", actions=list(RUNTIME_IAM_ACTIONS), resources=[self.table.attr_arn]
                )
            ]
        )
        provider = str(context(self, stage.name, "model_provider", "")).strip().lower()
        if provider == "bedrock":
            self.policy.add_statements(
                iam.PolicyStatement(
                    sid="BedrockConverse",
                    actions=["bedrock:InvokeModel"],
                    resources=[
                        "arn:aws:bedrock:*::foundation-model/*",
                        f"arn:aws:bedrock:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:inference-profile/*",
                    ],
                )
            )
        self.role = iam.Role(
            self,
            "LambdaRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"The sessions service's Lambda functions ({stage.name})",
            inline_policies={"sessions-runtime": self.policy},
        )

        self.chalice = Chalice(
            self,
            "Service",
            source_dir=str(ROOT),
            stage_config={
                "api_gateway_stage": API_STAGE,
                "api_gateway_endpoint_type": "REGIONAL",
                "manage_iam_role": False,
                "iam_role_arn": self.role.role_arn,
                "lambda_memory_size": LAMBDA_MEMORY_MB,
                "lambda_timeout": LAMBDA_TIMEOUT_S,
                "environment_variables": self._environment(provider),
            },
        )
        self.functions = self._functions()
        for name, function in self.functions.items():
            self._log_group(name, function, removal)
        self._cascades(removal)
        self._api_gateway()
        self._outputs()

    # --- the table --------------------------------------------------------------------------

    def _table(self, removal: cdk.RemovalPolicy) -> dynamodb.CfnTable:
        definition = schema.table_definition("unused")  # CloudFormation names the table
        table = dynamodb.CfnTable(
            self,
            "SessionsTable",
            key_schema=[dynamodb.CfnTable.KeySchemaProperty(**_struct(key)) for key in definition["KeySchema"]],
            attribute_definitions=[
                dynamodb.CfnTable.AttributeDefinitionProperty(**_struct(attribute))
                for attribute in definition["AttributeDefinitions"]
            ],
            billing_mode=definition["BillingMode"],
            time_to_live_specification=dynamodb.CfnTable.TimeToLiveSpecificationProperty(
                enabled=True, attribute_name=schema.TTL_ATTRIBUTE
            ),
            point_in_time_recovery_specification=dynamodb.CfnTable.PointInTimeRecoverySpecificationProperty(
                point_in_time_recovery_enabled=True
            ),
            sse_specification=dynamodb.CfnTable.SSESpecificationProperty(sse_enabled=True),
            stream_specification=dynamodb.CfnTable.StreamSpecificationProperty(
                stream_view_type=definition["StreamSpecification"]["StreamViewType"]
            ),
            deletion_protection_enabled=self.stage.retain,
        )
        table.apply_removal_policy(removal)
        return table

    # --- the app ----------------------------------------------------------------------------

    def _environment(self, provider: str) -> dict[str, str]:
        stage = self.stage.name
        environment = {
            "SESSIONS_TABLE": self.table.ref,
            # A CloudFormation dynamic reference: resolved at deploy time into the functions'
            # configuration, so no function needs secretsmanager:GetSecretValue (docs/deploy.md).
            "SESSIONS_CURSOR_SECRET": self.cursor_secret.secret_value.unsafe_unwrap(),
            # pydantic otherwise scans every installed distribution for plugins on its first model
            # (docs/performance.md "Cold start"); the service uses none.
            "PYDANTIC_DISABLE_PLUGINS": "__all__",
            # The stream's function finishes cascades: a DELETE does its transaction and answers.
            "SESSIONS_CASCADES": "stream",
        }
        if provider:
            environment["SESSIONS_MODEL_PROVIDER"] = provider
        for key, variable in (("openai_base_url", "OPENAI_BASE_URL"), ("model_timeout", "SESSIONS_MODEL_TIMEOUT")):
            value = context(self, stage, key)
            if value is not None:
                environment[variable] = str(value)
        aliases = context(self, stage, "model_aliases")
        if aliases is not None:
            environment["SESSIONS_MODEL_ALIASES"] = aliases if isinstance(aliases, str) else json.dumps(aliases)
        api_key_secret = context(self, stage, "openai_api_key_secret")
        if api_key_secret:  # the name or ARN of a secret the team made; never the key itself in context
            environment["OPENAI_API_KEY"] = cdk.SecretValue.secrets_manager(str(api_key_secret)).unsafe_unwrap()
        return environment

    def _functions(self) -> dict[str, cdk.CfnResource]:
        """Every Lambda function of the packaged app, by logical id (APIHandler, and Invoke once
        app.py has its lambda_function)."""
        return {
            child.node.id: child
            for child in self.chalice.sam_template.node.children
            if isinstance(child, cdk.CfnResource) and child.cfn_resource_type == SERVERLESS_FUNCTION
        }

    def _log_group(self, name: str, function: cdk.CfnResource, removal: cdk.RemovalPolicy) -> None:
        """The function's own log group, made before it (LoggingConfig), so the role needs no
        logs:CreateLogGroup and may write to these groups only; logs in Lambda's JSON format."""
        group = logs.LogGroup(self, f"{name}Logs", retention=self.stage.log_retention, removal_policy=removal)
        # JSON: the runtime's own log lines (warnings, tracebacks) come out as JSON objects with the
        # request id, like the per-request lines and their EMF metrics (docs/observability.md).
        function.add_property_override("LoggingConfig", {"LogGroup": group.log_group_name, "LogFormat": "JSON"})
        self.policy.add_statements(
            iam.PolicyStatement(
                sid=f"{name}Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[group.log_group_arn],
            )
        )

    def _cascades(self, removal: cdk.RemovalPolicy) -> None:
        """The table's stream to the cascades function: filtered to purge markers and TTL's
        removals, retried, bisected on error, and at last sent to a queue the operators replay
        (`sessions-admin finish-deletes`; docs/operations.md)."""
        function = self.functions[CASCADES_FUNCTION]
        function.add_property_override("Timeout", CASCADES_TIMEOUT_S)
        self.cascades_failed = sqs.Queue(
            self,
            "CascadesFailed",
            retention_period=cdk.Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            removal_policy=removal,
        )
        lambda_.CfnEventSourceMapping(
            self,
            "CascadesFromStream",
            function_name=function.ref,
            event_source_arn=self.table.attr_stream_arn,
            starting_position="TRIM_HORIZON",
            batch_size=CASCADES_BATCH_SIZE,
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=CASCADES_RETRIES,
            destination_config=lambda_.CfnEventSourceMapping.DestinationConfigProperty(
                on_failure=lambda_.CfnEventSourceMapping.OnFailureProperty(destination=self.cascades_failed.queue_arn)
            ),
            filter_criteria=lambda_.CfnEventSourceMapping.FilterCriteriaProperty(
                filters=[lambda_.CfnEventSourceMapping.FilterProperty(pattern=json.dumps(f)) for f in EVENT_FILTERS]
            ),
        )
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="TableStream", actions=list(STREAM_IAM_ACTIONS), resources=[self.table.attr_stream_arn]
            ),
            iam.PolicyStatement(
                sid="CascadesFailed", actions=["sqs:SendMessage"], resources=[self.cascades_failed.queue_arn]
            ),
        )

    def _api_gateway(self) -> None:
        rest_api = self.chalice.get_resource("RestAPI")
        rate = float(context(self, self.stage.name, "throttle_rate", self.stage.throttle_rate))
        burst = int(context(self, self.stage.name, "throttle_burst", self.stage.throttle_burst))
        rest_api.add_property_override(
            "MethodSettings",
            [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}],
        )
        # In the OpenAPI body, not as AWS::ApiGateway::GatewayResponse resources: a change to them
        # then changes the body, so SAM makes a new deployment and the stage serves it at once.
        rest_api.add_property_override("DefinitionBody.x-amazon-apigateway-gateway-responses", gateway_responses())

    def _outputs(self) -> None:
        cdk.CfnOutput(
            self, "TableName", value=self.table.ref, description="the DynamoDB table (sessions-admin --table)"
        )
        cdk.CfnOutput(self, "CursorSecretArn", value=self.cursor_secret.secret_arn)
        cdk.CfnOutput(self, "LambdaRoleArn", value=self.role.role_arn)
        cdk.CfnOutput(
            self,
            "CascadesFailedQueueUrl",
            value=self.cascades_failed.queue_url,
            description="stream batches the cascades function gave up on (docs/operations.md)",
        )
        for name, function in self.functions.items():
            if name == "APIHandler":
                continue
            cdk.CfnOutput(
                self,
                f"{name}FunctionName",
                value=function.ref,
                description=f"the {name} function; callers need lambda:InvokeFunction on its ARN",
            )
            cdk.CfnOutput(self, f"{name}FunctionArn", value=function.get_att("Arn").to_string())
