"""What a cold start imports. Every module `import app` loads is paid by the first request of every
new Lambda process, so the ones only some requests need are imported by those requests
(docs/performance.md, "Cold start"). Timings are bench/coldstart.py's; these tests check only
*what* is loaded, each in a fresh interpreter, so a change that imports one of them eagerly
again fails here. (tests/test_providers.py and tests/test_templates.py check the provider modules
and jinja2 on their own; this file checks the whole list.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Never needed to answer most requests: templates, model providers, the API's description, and
# packages that are never runtime dependencies at all.
OPTIONAL_HEAVY = [
    "jinja2",
    "chalicelib.rules.templates",
    "chalicelib.providers",
    "chalicelib.web.openapi",
    "moto",
    "aws_cdk",
]
# Imported by chalicelib/web/operations.py when an operation first runs; with them the pydantic
# models (chalicelib.rules.models) and pydantic's model machinery (pydantic.main).
ON_FIRST_USE = [
    "chalicelib.rules.kinds",
    "chalicelib.rules.records",
    "chalicelib.rules.deletes",
    "chalicelib.rules.validation",
    "chalicelib.rules.conflicts",
    "chalicelib.rules.lists",
    "chalicelib.rules.history",
    "chalicelib.rules.context",
    "chalicelib.rules.chat",
    "chalicelib.rules.idempotency",
    "chalicelib.rules.forks",
    "chalicelib.rules.models",
    "pydantic.main",
]


def fresh(script: str) -> dict:
    """Run `script` in a new interpreter at the repository's root; its last line of output, as JSON."""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


LOADED = """
import json, sys
def loaded(names):
    return sorted(m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in names))
"""


def test_import_app_registers_every_route_and_loads_nothing_it_can_leave_for_later():
    answer = fresh(
        "import app\n"
        + LOADED
        + f"""
from chalicelib.web.operations import OPERATIONS
routes = [[op.method, op.path] for op in OPERATIONS.values() if op.method not in app.app.routes.get(op.path, {{}})]
print(json.dumps({{"heavy": loaded({OPTIONAL_HEAVY!r}), "deferred": loaded({ON_FIRST_USE!r}),
                   "unregistered": routes, "routes": len(OPERATIONS)}}))
"""
    )
    assert answer["routes"] >= 23 and answer["unregistered"] == [], "import app must still register every route"
    assert answer["heavy"] == [], f"import app loads optional heavy modules: {answer['heavy']}"
    assert answer["deferred"] == [], (
        f"import app loads modules operations.py imports on first use: "
        f"{answer['deferred']} (see docs/performance.md, 'Cold start')"
    )


def test_an_operation_imports_its_modules_when_it_first_runs():
    """The deferred imports do happen, through the operations table, and only the ones needed."""
    answer = fresh(
        "import app\nfrom chalicelib.web import operations\n"
        + LOADED
        + f"""
operations.OPERATIONS["agents.get"].run  # looking an operation up imports nothing
before = loaded({ON_FIRST_USE!r})
kind = operations.kind_of("agent")
print(json.dumps({{"before": before, "after": loaded({ON_FIRST_USE!r}), "kind": kind.name,
                   "heavy": loaded({OPTIONAL_HEAVY!r})}}))
"""
    )
    assert answer["before"] == []
    assert answer["kind"] == "agent"
    assert {"chalicelib.rules.kinds", "chalicelib.rules.models"} <= set(answer["after"])
    assert not {"chalicelib.rules.chat", "chalicelib.rules.context"} & set(answer["after"])
    assert answer["heavy"] == []


def test_importing_the_models_builds_no_validator():
    """chalicelib.rules.models defers each model's validator to its first use (defer_build), so the first
    request builds only the models it uses. DocIds is built at import: ChatResponse's default is
    an instance of it."""
    answer = fresh("""
import json, pydantic
from chalicelib.rules import models
models_ = {name: value for name, value in vars(models).items()
           if isinstance(value, type) and issubclass(value, pydantic.BaseModel) and not name.startswith("_")}
built = sorted(name for name, model in models_.items() if model.__pydantic_complete__)
models.Agent.model_validate({"id": "a", "name": "n", "created_at": "t", "updated_at": "t"})
print(json.dumps({"models": len(models_), "built": built, "agent": models.Agent.__pydantic_complete__}))
""")
    assert answer["models"] >= 20
    assert answer["built"] == ["DocIds"]
    assert answer["agent"] is True
