"""The README works for someone who just cloned the repository: it says how `coffer` gets on PATH before it
first types a bare `coffer`, its examples print what the CLI prints, and it names only files a clone has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_bare_coffer_only_after_saying_how_to_get_it_on_path():
    activate = README.index("source .venv/bin/activate")
    first_bare = re.search(r"(?m)(^\$ coffer |`coffer [a-z])", README)
    assert first_bare is not None and first_bare.start() > activate, README[: first_bare.start() + 80]
    makefile = (ROOT / "Makefile").read_text()
    run = makefile[makefile.index("\nrun:"):].split("\n\n")[0]
    assert "activate" in run  # make run prints the line to paste


def test_files_named_are_in_the_clone():
    named = set(re.findall(r"\]\(([^)#:]+)\)", README))  # markdown links
    named |= {m for m in re.findall(r"`([\w.][\w./-]*/[\w.-]+\.(?:md|py|hcl|json|txt|toml))`", README)}
    for name in sorted(named):
        assert not name.startswith(".."), f"{name} is outside the repository"
        assert (ROOT / name).exists(), f"README names {name}, which a clone does not have"


def test_the_walkthrough_is_what_the_cli_prints():
    block = README[README.index("$ coffer kv put secret/hello foo=world"):].split("```")[0]
    assert "== Secret Path ==\nsecret/data/hello\n\n====== Metadata ======\nKey              Value\n" in block
    assert "---              -----\n" in block  # tables are underlined, as vault's
