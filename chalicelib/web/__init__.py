"""The edge: how requests reach the rules. The operations table (operations.py) names each
operation's function, status and models; http.py binds it to Chalice, invoke.py to direct Lambda
invocation, answers.py turns failures into answers, queries.py reads query strings and headers
into typed values, openapi.py describes it all."""
