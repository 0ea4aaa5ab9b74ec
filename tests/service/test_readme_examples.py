"""The README's request examples, sent to a real service: what the README shows is what the service answers.

How README.md writes an example (the convention this test reads; every `curl` in a ```bash block must follow it):

- a `curl` command to `localhost:3000` with `-H "Authorization: Bearer $DOCKET_KEY"` (the admin key `make serve`
  prints); it continues over lines ending in `\\` and over an open single-quoted `-d '...'` body;
- the comment lines right after it are the answer: `# <status> <JSON>`, the JSON over as many `#` lines as it
  needs, exactly as the service answers it (no "..." and no elided fields);
- after the JSON, on the same or the next `#` line, optionally one of
  `varies: key, key, ...`  the values under these keys (anywhere in the answer) depend on the data set, the
                           trained models or the clock;
  `shape only`             every value does (which case tops the queue depends on the day);
  anything after either, in parentheses, is a note for the reader.

What is compared, example after example in README order (a later example may rely on an earlier one, as a
reader running them in turn does):

- the status;
- the shape: an object has exactly the README's keys, recursively; a list has the README's length and each
  element the shape of the README's element at that place;
- every value not marked as varying: equal to the README's (strings, booleans, null and numbers exactly as the
  service serialises them), so ids, echoed times, counts, policy versions, penalty decisions and error messages
  cannot drift;
- a value marked as varying: its shape only. A scalar stands for any scalar (a reason's `value` is a number, a
  category or null, a rules-scored case has no `p_valid`); an object has the README's keys, recursively; a
  varying list may have any length, each element shaped like the README's first one (an empty README list says
  nothing about its elements).

Before the first example the test waits (up to WARM_SECONDS) until the service's sweep has rescored the imported
reports with the models, as on a service that has run for a while: until then the queue may show a rules-scored
case, whose reasons have another shape.

The service is one of the test's own, on a fresh store filled from the session's data set (the examples store
reports, events and outcomes, which a shared service would carry into other tests: a README account id once
turned another test's "not seen yet" account into a known one). Its data set is the session's (20,000 simulated
reports, seed 11), not `make serve`'s (30,000, seed 7): a
value that differs between the two data sets is by this rule one the README must mark, and a number the README
states without a mark (a penalty's days, a count) must be the same on both. The README's examples come from
`make serve`'s data, so marked values there are real answers, just not this service's.
"""
from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import client, make_keys

README = Path(__file__).resolve().parents[2] / "README.md"
README_BASE = "localhost:3000"
KEY_VARIABLE = "$DOCKET_KEY"
SHAPE_ONLY = "shape only"
WARM_SECONDS = 90.0  # the sweep rescores the imported reports with the models every few seconds


@dataclass
class Example:
    line: int  # 1-based line of the `curl` in README.md
    command: str
    status: int
    answer: Any
    varies: frozenset[str] = frozenset()
    shape_only: bool = False
    method: str = "GET"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None

    @property
    def name(self) -> str:
        return f"README.md:{self.line} {self.method} {self.url}"


# ---------------------------------------------------------------------------
# Reading the README

def bash_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(line number of the block's first line, its lines) of every ```bash block."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if current is None and stripped.startswith("```bash"):
            current, start = [], number + 1
        elif current is not None and stripped.startswith("```"):
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _complete(command: str) -> bool:
    """The command's lines so far form a whole command (no open quote, no trailing backslash)."""
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=False)
    except ValueError:  # No closing quotation
        return False
    return True


def parse_answer(text: str, where: str) -> tuple[int, Any, frozenset[str], bool]:
    """`<status> <JSON> [varies: a, b | shape only] [(note)]` -> (status, JSON, varying keys, shape only)."""
    m = re.match(r"\s*(\d{3})\s+", text)
    if not m:
        raise ValueError(f"{where}: the answer must start with an HTTP status, then the JSON: {text[:80]!r}")
    try:
        answer, end = json.JSONDecoder().raw_decode(text, m.end())
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: the answer is not JSON ({err}): {text[m.end():m.end() + 120]!r}") from err
    rest = re.sub(r"\(.*\)\s*$", "", text[end:].strip(), flags=re.DOTALL).strip()
    if not rest:
        return int(m.group(1)), answer, frozenset(), False
    if rest == SHAPE_ONLY:
        return int(m.group(1)), answer, frozenset(), True
    marked = re.fullmatch(r"varies:\s*([\w-]+(?:\s*,\s*[\w-]+)*)", rest)
    if not marked:
        raise ValueError(f"{where}: after the JSON only 'varies: key, ...' or 'shape only' may follow, got {rest!r}")
    return int(m.group(1)), answer, frozenset(k.strip() for k in marked.group(1).split(",")), False


def parse_curl(command: str, where: str) -> dict:
    """Method, URL, headers and body of a curl command line."""
    args = shlex.split(command.replace("\\\n", " "))
    if args[0] != "curl":
        raise ValueError(f"{where}: not a curl command")
    method, url, headers, body = None, None, {}, None
    it = iter(args[1:])
    for arg in it:
        if arg in ("-X", "--request"):
            method = next(it)
        elif arg in ("-H", "--header"):
            name, _, value = next(it).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw"):
            body = next(it)
        elif arg in ("-s", "--silent", "-S", "--show-error"):
            continue
        elif arg.startswith("-"):
            raise ValueError(f"{where}: curl option {arg} is not understood by this test")
        elif url is None:
            url = arg
        else:
            raise ValueError(f"{where}: two URLs in one curl command")
    if url is None or not url.startswith(README_BASE):
        raise ValueError(f"{where}: examples call {README_BASE}, got {url!r}")
    return {"method": method or ("POST" if body is not None else "GET"), "url": url, "headers": headers,
            "body": body}


def read_examples(text: str) -> list[Example]:
    """Every curl example of the README with its answer, in order; ValueError naming the line if one breaks
    the convention."""
    examples = []
    for start, lines in bash_blocks(text):
        i = 0
        while i < len(lines):
            if not lines[i].lstrip().startswith("curl "):
                i += 1
                continue
            first, command = start + i, lines[i]
            while not _complete(command):
                i += 1
                if i == len(lines):
                    raise ValueError(f"README.md:{first}: the curl command never ends")
                command += "\n" + lines[i]
            i += 1
            comments = []
            while i < len(lines) and lines[i].lstrip().startswith("#"):
                comments.append(lines[i].lstrip()[1:])
                i += 1
            where = f"README.md:{first}"
            if not comments:
                raise ValueError(f"{where}: a curl example needs its answer in the '#' lines right after it")
            status, answer, varies, shape_only = parse_answer("\n".join(comments), where)
            examples.append(Example(first, command, status, answer, varies, shape_only,
                                    **parse_curl(command, where)))
    return examples


# ---------------------------------------------------------------------------
# Comparing

def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def differences(expected: Any, actual: Any, varies: frozenset[str] = frozenset(), loose: bool = False,
                path: str = "$") -> list[str]:
    """Where `actual` departs from the README's `expected` under the rule in this module's docstring."""
    containers = ("object", "list")
    if loose and _kind(expected) not in containers and _kind(actual) not in containers:
        return []  # a varying scalar: any scalar
    if _kind(expected) != _kind(actual):
        return [(f"{path}: README shows {_kind(expected)} {json.dumps(expected)[:60]}, "
                 f"service answers {_kind(actual)} {json.dumps(actual)[:60]}")]
    if isinstance(expected, dict):
        out = []
        missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
        if missing:
            out.append(f"{path}: README shows keys the service does not answer: {missing}")
        if extra:
            out.append(f"{path}: the service answers keys the README does not show: {extra}")
        for key in sorted(set(expected) & set(actual)):
            out += differences(expected[key], actual[key], varies, loose or key in varies, f"{path}.{key}")
        return out
    if isinstance(expected, list):
        if loose:
            if not expected:
                return []
            return [d for i, item in enumerate(actual) for d in differences(expected[0], item, varies, True,
                                                                            f"{path}[{i}]")]
        if len(expected) != len(actual):
            return [(f"{path}: README shows {len(expected)} item(s), the service answers {len(actual)}: "
                     f"{json.dumps(actual)[:120]}")]
        return [d for i, (e, a) in enumerate(zip(expected, actual))
                for d in differences(e, a, varies, False, f"{path}[{i}]")]
    if expected != actual:
        return [f"{path}: README shows {json.dumps(expected)}, the service answers {json.dumps(actual)}"]
    return []


# ---------------------------------------------------------------------------
# The tests

def test_the_readme_examples_follow_the_convention():
    examples = read_examples(README.read_text(encoding="utf-8"))
    assert len(examples) >= 8, [e.name for e in examples]
    paths = {e.url.removeprefix(README_BASE).split("?")[0] for e in examples}
    assert {"/score", "/reports", "/queue", "/events", "/penalty"} <= paths, paths
    for e in examples:
        assert e.headers.get("Authorization") == f"Bearer {KEY_VARIABLE}", f"{e.name}: send the admin key"
        if e.body is not None:
            json.loads(e.body)  # a body is JSON as written, so a reader can paste it


def test_the_checker_sees_drift():
    """The comparison itself: it must fail on what the README could get wrong."""
    shown = {"stored": {"accounts": 1}, "seq": 12, "ids": ["a"], "reasons": [{"feature": "x", "value": 1.0}]}
    same_but_varying = {"stored": {"accounts": 1}, "seq": 99, "ids": ["a"],
                        "reasons": [{"feature": "y", "value": 2}, {"feature": "z", "value": 3.5}]}
    assert differences(shown, same_but_varying, frozenset({"seq", "reasons"})) == []
    assert differences(shown, same_but_varying) != []  # unmarked, the seq and the reasons differ
    assert differences(shown, {**shown, "new": 1})  # a key the README does not show
    assert differences(shown, {k: v for k, v in shown.items() if k != "ids"})  # a key the service dropped
    assert differences(shown, {**shown, "stored": {"accounts": 2}}, frozenset({"seq"}))  # a stable count
    assert differences(shown, {**shown, "ids": ["a", "b"]}, frozenset({"seq"}))  # a stable list's length
    assert differences(shown, {**shown, "seq": [12]}, frozenset({"seq"}))  # a varying value's shape
    assert differences(shown, {**shown, "reasons": [{"feature": "x"}]}, frozenset({"reasons"}))  # its keys
    assert differences(shown, {**shown, "reasons": [{"feature": None, "value": "spam"}]}, frozenset({"reasons"})) == []
    assert differences([shown], [same_but_varying], loose=True) == []  # shape only
    assert differences([shown], [{**shown, "stored": {}}], loose=True)
    with pytest.raises(ValueError, match="HTTP status"):
        parse_answer('{"a": 1}', "x")
    with pytest.raises(ValueError, match="only 'varies"):
        parse_answer('200 {"a": 1} roughly', "x")
    assert parse_answer('200 {"a": 1}\n varies: a, b (why)', "x") == (200, {"a": 1}, frozenset({"a", "b"}), False)


def _warm(api, service: str) -> None:
    """Wait until the sweep has rescored the imported reports with the models (as `make serve`'s service has
    long done by the time a reader runs the examples): until then the queue holds rules-scored cases, whose
    reasons have another shape."""
    deadline = time.monotonic() + WARM_SECONDS
    while time.monotonic() < deadline:
        page = api.get(f"{service}/queue", params={"limit": 1000})
        if page.status_code == 200 and all(case["scored_by"] == "model" for case in page.json()):
            return
        time.sleep(1.0)


def test_every_readme_example_answers_as_shown(trained, data_dir, mlflow_uri, launch_service, tmp_path):
    examples = read_examples(README.read_text(encoding="utf-8"))
    store = f"sqlite:///{tmp_path / 'readme.db'}"
    service = launch_service({"DOCKET_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": mlflow_uri,
                              "DOCKET_DATABASE_URL": store})
    keys = make_keys(store)
    api = client(keys["admin"])
    _warm(api, service)
    failures = []
    with client(None) as http:
        for e in examples:
            headers = {k: v.replace(KEY_VARIABLE, keys["admin"]) for k, v in e.headers.items()}
            url = service + e.url.removeprefix(README_BASE)
            res = http.request(e.method, url, headers=headers, content=e.body)
            try:
                answer = res.json()
            except ValueError:
                failures.append(f"{e.name}: not JSON ({res.status_code}): {res.text[:200]}")
                continue
            found = [] if res.status_code == e.status else [f"status {res.status_code}, README shows {e.status}"]
            found += differences(e.answer, answer, e.varies, e.shape_only)
            if found:
                failures.append(f"{e.name}:\n    " + "\n    ".join(found)
                                + f"\n    the service answered: {json.dumps(answer)[:600]}")
    assert not failures, "README examples that no longer match the service:\n" + "\n".join(failures)
