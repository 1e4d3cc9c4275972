"""The fuzz corpus: every field of a valid push of every supported type, mutated.

A mutated push is either refused (InvalidInput: exit 2, every error with a JSON path) or
accepted, and then the whole router it asks for renders with no control character in any
file. Never a traceback; and the renderer guard (vragent/guard.py) never has to refuse
anything, because parsing typed every value first. In-process and pure (merge, validate,
render into a scratch root), so a few hundred examples per type take seconds.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit import hostile
from vragent import engine
from vragent.errors import InvalidInput
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.pipeline.intake import Document, merge_documents

SCENARIOS = hostile.scenarios()
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")


@functools.lru_cache(maxsize=None)
def _before(kind: str) -> RouterState:
    before, _ = SCENARIOS[kind]
    documents = [Document(f"before-{i}.json", text=json.dumps(p)) for i, p in enumerate(before)]
    return merge_documents(RouterState(), documents) if documents else RouterState()


def outcome(kind: str, payload, root: Path) -> list[dict]:
    """Merge `payload` (pushed as JSON text) onto the scenario and render the router.
    Returns the errors of a refusal ([] when it was accepted); raises on anything else."""
    name = f"{kind}.json.5eed"
    text = json.dumps(payload, ensure_ascii=False, allow_nan=True)
    try:
        state = merge_documents(_before(kind), [Document(name, text=text)])
    except InvalidInput as exc:
        errors = [{"path": e.path, "message": e.message} for e in exc.errors]
        assert errors, "a refusal names at least one problem"
        for error in errors:
            assert error["path"].startswith((f"{name}:", "state:")), error
            assert error["message"] and len(error["message"]) < 2000, error
        return errors
    desired = engine.render(state, Paths(root))  # the guard raising here is a parse-time gap: a failure
    files = [*desired.files.items(), *((p, c) for d in desired.daemons for p, (c, _) in d.files.items())]
    for path, content in files:
        if isinstance(content, str):
            found = _CONTROL.search(content)
            assert found is None, f"{path} holds {found.group()!r}"
            content.encode("utf-8")
            # The injections' payloads never reach a file, whichever field carried them.
            if path.suffix != ".json":  # JSON data files (the data server's) escape what they hold
                assert "dhcp-script" not in content and "192.0.2.66" not in content, path
    return []


def _mutations(kind: str):
    _, push = SCENARIOS[kind]
    paths = [p for p in hostile.leaves(push) if p and p != ("type",)]
    spliced = st.tuples(st.sampled_from(hostile.INJECTIONS), st.booleans())
    return st.tuples(st.sampled_from(paths), st.one_of(st.sampled_from([*hostile.HOSTILE, hostile.DELETE]), spliced))


def _apply(kind: str, path, value):
    _, push = SCENARIOS[kind]
    if isinstance(value, tuple):  # splice an injection into the field's own value
        injection, before = value
        holder = push
        for step in path:
            holder = holder[step]
        original = holder if isinstance(holder, str) else json.dumps(holder)
        value = injection + original if before else original + injection
    return hostile.replaced(push, path, value)


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
def test_a_valid_push_of_each_type_is_accepted(kind, tmp_path):
    assert outcome(kind, SCENARIOS[kind][1], tmp_path) == []


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
def test_every_field_of_every_type_mutated_is_refused_with_a_path_or_renders_clean(kind, tmp_path_factory):
    root = tmp_path_factory.mktemp(kind)

    @settings(max_examples=int(__import__("os").environ.get("VRAGENT_FUZZ_EXAMPLES", "150")), deadline=None,
              derandomize=not __import__("os").environ.get("VRAGENT_FUZZ_RANDOM"),
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(_mutations(kind))
    def check(mutation):
        path, value = mutation
        payload = _apply(kind, path, value)
        outcome(kind, payload, root)

    check()
