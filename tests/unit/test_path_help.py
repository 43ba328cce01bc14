"""path-help is written for people: every field of every path of the aws and kv engines (both versions)
has a sentence saying what it is, never the generated "Path parameter name."."""

from __future__ import annotations

import pytest

from coffer.engines import aws, kv
from coffer.framework.request import MountInfo

ENGINES = {
    "aws": aws.factory(MountInfo(path="aws/", type="aws")),
    "kv-v1": kv.factory(MountInfo(path="kv/", type="kv")).v1,
    "kv-v2": kv.factory(MountInfo(path="kv/", type="kv", options={"version": "2"})).v2,
}
FIELDS = [(engine, path.pattern, name, field.description)
          for engine, backend in ENGINES.items() for path in backend.paths for name, field in path.fields.items()]


@pytest.mark.parametrize("engine,pattern,name,description", FIELDS,
                         ids=[f"{e}:{p}:{n}" for e, p, n, _ in FIELDS])
def test_every_field_has_a_sentence(engine, pattern, name, description):
    assert not description.startswith("Path parameter"), description
    assert len(description.split()) >= 5, f"{engine} {pattern} {name}: {description!r} is not a sentence"
    assert description[0].isupper() and description.rstrip(")").endswith("."), description


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_path_has_a_synopsis(engine):
    for path in ENGINES[engine].paths:
        assert len(path.synopsis.split()) >= 3, path.pattern
