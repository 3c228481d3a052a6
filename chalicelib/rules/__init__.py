"""The service's rules: every operation takes the developer id and plain, typed values and
returns a wire model or raises a named error (shared/errors.py). No HTTP type, no status code, no
botocore name: HTTP routes and direct Lambda invocation (web/) both call these."""
