"""The sessions service, in layers; each imports only from the layers below it, and nothing
imports app.py (docs/design.md, "Layers"):

    web/        the edge: Chalice glue, direct invocation, the operations table, answers for
                failures, OpenAPI, and the parsing of query strings and headers into typed values
    tools/      operators' tools: the admin CLI, the export format, the consistency check
    rules/      the service's rules: records, lists, history, context, chat, idempotency, keys;
                no HTTP type, status code or botocore name
    providers/  model providers (OpenAI-compatible, Bedrock), behind one interface
    store/      DynamoDB: keys, codec, the table's operations, operators' scans, the client
    shared/     used by every layer: errors, JSON, clock, telemetry
"""
