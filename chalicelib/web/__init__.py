"""The edge: how requests reach the rules. The operations table (operations.py) names each
operation's function, status and models; http.py binds it to Chalice, invoke.py to direct Lambda
invocation, answers.py turns failures into answers, headers.py reads headers and the query string
into typed values, openapi.py describes it all."""
