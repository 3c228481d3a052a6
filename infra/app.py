#!/usr/bin/env python3
"""The CDK app: the stacks `sessions-dev` and `sessions-prod` (infra/stack.py).

`make infra` runs it directly to synthesize both into infra/cdk.out, offline; the CDK CLI runs
it through cdk.json (`cd infra && npx aws-cdk deploy sessions-prod`). Either way it runs in
infra/, where chalice.cdk.Chalice leaves its packaging (chalice.out/).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.chdir(HERE)
# Bytecode of this run goes to infra/.pycache, never beside the sources: `chalice package` zips
# everything under chalicelib/, so stale __pycache__ left by test runs is removed too. The package,
# and so the asset hash CloudFormation sees, then depends on the sources alone.
sys.dont_write_bytecode = False
sys.pycache_prefix = str(HERE / ".pycache")
for cache in (HERE.parent / "chalicelib").rglob("__pycache__"):
    shutil.rmtree(cache, ignore_errors=True)
# `chalice package` asks botocore for a region only to spell service principals (the partition's
# DNS suffix); the stacks themselves are region-agnostic. The CLI sets CDK_DEFAULT_REGION.
os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("CDK_DEFAULT_REGION") or "us-east-1")

import aws_cdk as cdk  # noqa: E402
from stack import STAGES, SessionsStack  # noqa: E402

# The CLI names the output folder in CDK_OUTDIR; run directly, the app writes to infra/cdk.out.
app = cdk.App(**({} if os.environ.get("CDK_OUTDIR") else {"outdir": str(HERE / "cdk.out")}))
for stage in STAGES.values():
    SessionsStack(
        app,
        f"sessions-{stage.name}",
        stage=stage,
        description=f"Sessions service ({stage.name}): API Gateway, Lambda, DynamoDB",
    )
app.synth()
