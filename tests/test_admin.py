"""The operators' console, `sessions-admin` (chalicelib/tools/admin.py, docs/operations.md): keys made,
listed and revoked; export and import exact to the byte; refusals that write nothing; the
consistency check; progress on stderr only; and the installed script against a moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from chalicelib.rules import auth
from chalicelib.store import scans
from chalicelib.store.codec import only_key
from chalicelib.tools import admin, transfer
from conftest import AWS_ENV, scan_all


def run(*argv: str) -> int:
    return admin.main(list(argv))


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the console in-process: (exit code, stdout, stderr) of this run alone (the app logs
    requests to stdout, so what came before is dropped first)."""
    capsys.readouterr()
    code = admin.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def export_lines(tmp_path: Path, developer: str = "alice", name: str | None = None) -> list[str]:
    path = tmp_path / (name or f"{developer}-{uuid.uuid4().hex[:6]}.jsonl")
    assert run("export", "--developer", developer, "--output", str(path)) == 0
    return path.read_text(encoding="utf-8").splitlines()


def raw(items: list[dict]) -> bytes:
    return json.dumps(items, sort_keys=True, ensure_ascii=False, default=lambda b: b.hex()).encode("utf-8")


def wipe(table, developer: str) -> None:
    scans.delete_items(
        table, [only_key(item) for page, _ in scans.developer_pages_typed(table, developer) for item in page]
    )


def write_file(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def data(api, table):
    """Some of everything for alice (exact numbers, unicode, history, an idempotency receipt, a
    raw item of every DynamoDB type) and a little for bob."""
    agent = api.post(
        "/agents",
        {"name": "Sära ☕", "about": "coach", "instructions": ["be kind"], "metadata": {"big": 1e40, "tier": "gold"}},
    ).json["id"]
    user = api.post("/users", {"name": "Ann", "about": "a user"}, headers={"Idempotency-Key": "u-1"}).json["id"]
    session = api.request(
        "POST",
        "/sessions",
        raw='{"agent_id": "%s", "user_id": "%s", "situation": "日本語 \\ud83d\\ude00",'
        ' "metadata": {"exact": 0.12345678901234567890123456789012345678, "neg": -1E-100,'
        ' "lines": "a\\u2028b\\u0085c\\u2029d"}}' % (agent, user),
    ).json["id"]
    api.post(
        f"/sessions/{session}/history",
        {"messages": [{"role": "user", "content": "héllo"}, {"role": "assistant", "content": "hi 👋"}]},
    )
    table.client.put_item(
        TableName=table.table,
        Item={
            "pk": {"S": "dev#alice#raw#1"},
            "sk": {"S": "#record"},
            "b": {"B": b"\x00\xff\x10"},
            "bs": {"BS": [b"z", b"\x01"]},
            "ss": {"SS": ["b", "a"]},
            "ns": {"NS": ["2", "1.50"]},
            "n": {"N": "10000000000000000000000000000000000000000"},
            "null": {"NULL": True},
            "t": {"BOOL": False},
            "l": {"L": [{"N": "0.10"}, {"M": {"k": {"S": "v"}}}]},
        },
    )
    api.as_("bob").post("/agents", {"name": "Bob's", "about": "not alice's"})
    return {"agent": agent, "user": user, "session": session}


def test_create_key_prints_it_once_authenticates_and_is_stored_only_hashed(api, table, capsys):
    code, out, err = cli(capsys, "create-key", "--developer", "alice")
    key = out.strip()
    assert code == 0
    assert out == key + "\n" and key.startswith("sk_") and "cannot be shown again" in err and key not in err
    assert api.get("/agents", key=key).status_code == 200
    stored = json.dumps(scan_all(table), default=repr)
    assert key not in stored and key[auth.PREFIX_CHARS :] not in stored and auth.hash_key(key) in stored

    code, out, _ = cli(capsys, "list-keys", "--developer", "alice", "--json")
    listed = json.loads(out)
    assert key[: auth.PREFIX_CHARS] in [k["prefix"] for k in listed] and key not in json.dumps(listed)


def test_revoke_key_makes_the_api_answer_401_and_refuses_ambiguity(api, table, capsys):
    first = auth.create_key(table, "alice")
    auth.register_key(table, "alice", first[: auth.PREFIX_CHARS] + "-second")  # the same prefix
    before = scan_all(table)
    code, _, err = cli(capsys, "revoke-key", "--developer", "alice", first[: auth.PREFIX_CHARS])  # two match
    assert code == 1 and "2 keys of developer alice match" in err and "nothing was revoked" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert run("revoke-key", "--developer", "alice", "nothing-like-it") == 1
    assert run("revoke-key", "--developer", "bob", first[: auth.PREFIX_CHARS]) == 1  # not bob's
    assert scan_all(table) == before

    code, out, _ = cli(capsys, "revoke-key", "--developer", "alice", auth.hash_key(first)[:12])  # by hash
    assert code == 0 and out.startswith(f"revoked {first[: auth.PREFIX_CHARS]}")
    assert api.get("/agents", key=first).status_code == 401
    assert api.get("/agents", key=first[: auth.PREFIX_CHARS] + "-second").status_code == 200
    assert api.get("/agents").status_code == 200


def test_revoke_key_takes_the_whole_key_and_fails_when_it_deletes_nothing(api, table, capsys):
    key = auth.create_key(table, "alice")
    code, out, _ = cli(capsys, "revoke-key", "--developer", "alice", key)
    assert code == 0 and out.startswith(f"revoked {key[: auth.PREFIX_CHARS]}")
    assert api.get("/agents", key=key).status_code == 401
    # A listing entry of alice's for a key bob holds (data from before keys were conditional).
    moved = "sk_moved-key-0002"
    auth.register_key(table, "bob", moved)
    table.client.put_item(
        TableName=table.table,
        Item={
            "pk": {"S": "dev#alice#apikeys"},
            "sk": {"S": f"{moved[: auth.PREFIX_CHARS]}#{auth.hash_key(moved)}"},
            "key_hash": {"S": auth.hash_key(moved)},
            "prefix": {"S": moved[: auth.PREFIX_CHARS]},
            "created_at": {"S": "x"},
        },
    )
    code, out, err = cli(capsys, "revoke-key", "--developer", "alice", moved)
    assert code == 1 and out == "" and "nothing was revoked" in err and "revoked sk_" not in err
    assert api.as_("bob").get("/agents").status_code == 200 and api.get("/agents", key=moved).status_code == 200


def test_list_keys_filters_by_prefix(table, capsys):
    auth.register_key(table, "alice", "sk_aaaaaaa-one")
    auth.register_key(table, "alice", "sk_bbbbbbb-two")
    code, out, _ = cli(capsys, "list-keys", "--developer", "alice", "--prefix", "sk_a", "--json")
    assert code == 0 and [k["prefix"] for k in json.loads(out)] == ["sk_aaaaaaa"]
    code, text, _ = cli(capsys, "list-keys", "--developer", "alice")
    assert "sk_aaaaaaa" in text and "sk_bbbbbbb" in text and "key-alice-" in text and "sk_aaaaaaa-one" not in text
    assert cli(capsys, "list-keys", "--developer", "bob", "--prefix", "sk_", "--json")[:2] == (0, "[]\n")


def test_export_wipe_import_is_exact_to_the_byte(api, table, data, tmp_path):
    for n in range(3):  # 1.1 MB in all: the Scan answers in 1 MB pages, and the export follows them
        table.client.put_item(
            TableName=table.table,
            Item={"pk": {"S": f"dev#alice#big#{n}"}, "sk": {"S": "#record"}, "text": {"S": f"{n}" * 380_000}},
        )
    assert len(list(scans.developer_pages_typed(table, "alice"))) > 1
    original = scan_all(table)
    lines = export_lines(tmp_path)
    head = json.loads(lines[0])
    assert head["format"] == "sessions-export" and head["developer"] == "alice" and head["items"] == len(lines) - 1
    assert not any("dev#bob#" in line or '"S":"bob"' in line for line in lines)
    alice = [
        item
        for item in original
        if item["pk"]["S"].startswith("dev#alice#") or item.get("developer_id") == {"S": "alice"}
    ]
    assert len(lines) - 1 == len(alice)
    assert any("#idem#" in line for line in lines) and any('"sk":{"S":"msg#' in line for line in lines)
    text = "\n".join(lines)
    assert '"N":"1E+40"' in text and "0.12345678901234567890123456789012345678" in text and "日本語 😀" in text

    wipe(table, "alice")
    assert api.get("/agents").status_code == 401  # her key went with her data
    assert run("import", "--developer", "alice", "--input", write_file(tmp_path / "in.jsonl", lines)) == 0
    # Byte for byte: every item, every attribute's type and text (attribute order means nothing
    # to DynamoDB; an export sorts the names).
    assert raw(scan_all(table)) == raw(original)
    again = export_lines(tmp_path)
    assert again[1:] == lines[1:] and {**json.loads(again[0]), "exported_at": 0} == {**head, "exported_at": 0}
    assert api.get(f"/sessions/{data['session']}").json["metadata"]["exact"] == pytest.approx(
        0.12345678901234568
    )  # and the API reads it as before
    replay = api.post("/users", {"name": "Ann", "about": "a user"}, headers={"Idempotency-Key": "u-1"})
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.json["id"] == data["user"]


def test_import_replace_leaves_exactly_the_file(api, table, data, tmp_path):
    original = scan_all(table)
    path = write_file(tmp_path / "alice.jsonl", export_lines(tmp_path))
    api.post("/agents", {"name": "new", "about": "after the export"})
    api.delete(f"/agents/{data['agent']}")
    auth.create_key(table, "alice")
    assert scan_all(table) != original
    assert run("import", "--developer", "alice", "--input", path, "--replace") == 0
    assert raw(scan_all(table)) == raw(original)


def test_import_refuses_bad_files_and_a_developer_with_data_writing_nothing(table, data, tmp_path, capsys):
    lines = export_lines(tmp_path)
    bob_item = next(item for item in scan_all(table) if item["pk"]["S"].startswith("dev#bob#"))
    bob_key = next(item for item in scan_all(table) if item.get("developer_id") == {"S": "bob"})
    stolen = {**bob_key, "developer_id": {"S": "alice"}}  # claims bob's key hash for alice
    head = json.loads(lines[0])
    cases = {
        "foreign line": (
            [
                lines[0].replace(f'"items": {head["items"]}', f'"items": {head["items"] + 1}'),
                *lines[1:],
                transfer.item_line(bob_item),
            ],
            f"line {len(lines) + 1}: pk 'dev#bob#",
        ),
        "bob's key record": ([*lines[:2], transfer.item_line(bob_key), *lines[3:]], "line 3: API key record"),
        "bob's export": (
            [lines[0].replace('"developer": "alice"', '"developer": "bob"'), *lines[1:]],
            "line 1: the file is developer 'bob'",
        ),
        "truncated": (lines[:-1], "truncated"),
        "not typed": (
            [*lines[:2], '{"pk": {"S": "dev#alice#x"}, "sk": {"S": "y"}, "n": 5}', *lines[3:]],
            "line 3: n: not a typed value",
        ),
        "not json": ([*lines[:2], "{", *lines[3:]], "line 3: not JSON"),
        "no header": (lines[1:], "line 1: not a sessions-export header"),
        "duplicate": ([*lines, lines[-1]], f"the same key as line {len(lines)}"),
    }
    wipe(table, "alice")
    before = scan_all(table)
    for name, (content, message) in cases.items():
        code, _, err = cli(
            capsys, "import", "--developer", "alice", "--input", write_file(tmp_path / "bad.jsonl", content)
        )
        assert code == 2, name
        assert message in err and "nothing was written" in err and "Traceback" not in err, (name, err)
        assert err.count("\n") == 1, name
        assert scan_all(table) == before, name

    # A record that says it is alice's key but carries bob's key hash never takes bob's key over.
    content = [
        lines[0].replace(f'"items": {head["items"]}', f'"items": {head["items"] + 1}'),
        *lines[1:],
        transfer.item_line(stolen),
    ]
    code, _, err = cli(capsys, "import", "--developer", "alice", "--input", write_file(tmp_path / "bad.jsonl", content))
    assert code == 2 and "belongs to developer 'bob'" in err and scan_all(table) == before

    good = write_file(tmp_path / "good.jsonl", lines)
    assert run("import", "--developer", "alice", "--input", good) == 0
    after = scan_all(table)
    code, _, err = cli(capsys, "import", "--developer", "alice", "--input", good)
    assert code == 2 and "already has" in err and scan_all(table) == after


def test_check_reports_clean_data_and_a_planted_orphan(table, data, capsys):
    code, out, _ = cli(capsys, "check", "--developer", "alice")
    report = json.loads(out)
    assert code == 0
    assert report["records"] == 3 and (report["missing"], report["orphaned"], report["orphaned_messages"]) == (
        [],
        [],
        [],
    )
    stray = {"pk": {"S": "dev#alice#agents#all#by_created"}, "sk": {"S": "2020-01-01T00:00:00.000000Z#x"}}
    table.client.put_item(TableName=table.table, Item=stray)
    code, out, err = cli(capsys, "check", "--developer", "alice")
    assert code == 1
    assert json.loads(out)["orphaned"] == [["dev#alice#agents#all#by_created", "2020-01-01T00:00:00.000000Z#x"]]
    assert "1 problems" in err


def test_finish_deletes_completes_what_an_interrupted_delete_left(api, table, data, capsys, monkeypatch):
    from chalicelib.rules import deletes

    budget = deletes.DELETE_BUDGET_SECONDS
    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", -1.0)  # the DELETE stops before its cascade
    assert api.delete(f"/agents/{data['agent']}").status_code == 503
    monkeypatch.setattr(deletes, "DELETE_BUDGET_SECONDS", budget)
    assert table.pending_purges("alice") and data["session"] in raw(scan_all(table)).decode()
    code, _, err = cli(capsys, "finish-deletes", "--developer", "alice", "--table", table.table, "--budget", "-1")
    assert code == 1 and "run it again" in err and table.pending_purges("alice")
    code, _, err = cli(capsys, "finish-deletes", "--developer", "alice", "--table", table.table)
    assert code == 0 and "1 pending deletes finished" in err
    assert table.pending_purges("alice") == []
    assert data["session"] not in raw(scan_all(table)).decode()
    assert cli(capsys, "check", "--developer", "alice", "--table", table.table)[0] == 0


def test_progress_goes_to_stderr_and_stdout_stays_parseable(table, data, tmp_path, capsys):
    code, out, err = cli(capsys, "--progress", "export", "--developer", "alice")
    assert code == 0
    lines = out.splitlines()
    assert json.loads(lines[0])["items"] == len(lines) - 1 and all(json.loads(line) for line in lines)
    assert f"\rexport alice: {len(lines) - 1} items" in err and "scanned" in err and "/s" in err
    wipe(table, "alice")
    code, out, err = cli(
        capsys, "import", "--developer", "alice", "--progress", "--input", write_file(tmp_path / "a.jsonl", lines)
    )
    assert code == 0 and out == "" and f"\rimport alice: {len(lines) - 1} of {len(lines) - 1} (100%) items" in err
    code, out, err = cli(capsys, "export", "--developer", "alice")
    assert code == 0 and out.splitlines()[1:] == lines[1:] and "\r" not in err  # no TTY, no --progress


def test_operator_mistakes_are_one_line_and_exit_2(table, tmp_path, capsys):
    cases = [
        (["--table", "no-such-table", "export", "--developer", "alice"], "table 'no-such-table' not found"),
        (["--table", "no-such-table", "create-key", "--developer", "alice"], "create-table"),
        (["import", "--developer", "alice", "--input", str(tmp_path / "absent.jsonl")], "cannot read"),
        (["export", "--developer", "alice", "--output", str(tmp_path / "no" / "dir.jsonl")], "cannot write"),
        (["import", "--developer", "alice", "--input", write_file(tmp_path / "empty", [])], "no header"),
    ]
    for argv, message in cases:
        code, _, err = cli(capsys, *argv)
        assert code == 2, argv
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "no").exists() and not list(tmp_path.glob("*.partial"))
    code, _, err = cli(capsys, "export", "--developer", "al#ice")
    assert code == 2 and "not a developer id" in err
    assert run("frobnicate") == 2


def test_installed_console_script_against_a_moto_server(tmp_path):
    from moto.server import ThreadedMotoServer

    script = Path(sys.executable).parent / "sessions-admin"
    if not script.exists():
        pytest.fail(f"{script} is missing: `make install` (or `pip install -e .`) installs the console script")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **AWS_ENV,
            "SESSIONS_TABLE": f"admin-cli-{uuid.uuid4().hex[:8]}",
        }

        def start(*argv: str) -> subprocess.Popen:
            return subprocess.Popen(
                [str(script), "--endpoint-url", f"http://{host}:{port}", *argv],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        def finish(process: subprocess.Popen) -> tuple[int, str, str]:
            out, err = process.communicate(timeout=60)
            return process.returncode, out, err

        assert finish(start("create-table"))[0] == 0
        code, out, err = finish(start("create-key", "--developer", "carol"))
        key = out.strip()
        assert code == 0 and key.startswith("sk_") and "cannot be shown again" in err
        # Each run is mostly Python and boto3 starting (about 0.8 s): the two readers run at once.
        listing = start("list-keys", "--developer", "carol", "--json")
        exporting = start("export", "--developer", "carol", "--output", str(tmp_path / "carol.jsonl"))
        (code, out, err), exported = finish(listing), finish(exporting)
        assert code == 0 and [k["prefix"] for k in json.loads(out)] == [key[: auth.PREFIX_CHARS]], err
        assert exported[0] == 0, exported[2]
        lines = (tmp_path / "carol.jsonl").read_text().splitlines()
        assert json.loads(lines[0])["items"] == 2 and key not in "".join(lines)
        assert {json.loads(line)["pk"]["S"] for line in lines[1:]} == {
            "dev#carol#apikeys",
            f"apikey#{auth.hash_key(key)}",
        }
    finally:
        server.stop()
