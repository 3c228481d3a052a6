"""The IAM actions the request path needs on the table, and no more (infra/ grants exactly these;
tests/test_iam_actions.py checks every call the API makes is covered). TransactWriteItems has no
action of its own: IAM authorizes each Put, Delete and ConditionCheck in it. Scan is not here:
only operators' tools (consistency check, admin export) scan, with their own credentials."""

RUNTIME_IAM_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchWriteItem",
)
# What Lambda's poller needs, with the cascades function's role, on the table's stream (and only
# there): AWS's own policies for a DynamoDB event source scope these four to the stream's ARN.
STREAM_IAM_ACTIONS = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)
