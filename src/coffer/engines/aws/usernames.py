"""IAM user and STS session names: Vault's default scheme, or the mount's ``username_template``."""

from __future__ import annotations

import os
import re
from functools import lru_cache

from coffer.framework.template import Template, TemplateError, compile_template

#: Vault's default: vault-<display name>-<role>-<unix time>-<random>, at most 64 characters
#: (STS: vault-<unix time>-<random>, at most 32).
DEFAULT_TEMPLATE = (
    '{{ if (eq .Type "STS") }}{{ printf "vault-%s-%s" (unix_time) (random 20) | truncate 32 }}'
    '{{ else }}{{ printf "vault-%s-%s-%s" (printf "%s-%s" (.DisplayName) (.PolicyName) | truncate 42) '
    "(unix_time) (random 20) | truncate 64 }}{{ end }}"
)
IAM_MAX = 64
_INVALID = re.compile(r"[^A-Za-z0-9+=,.@_-]")


@lru_cache(maxsize=64)
def _compiled(text: str) -> Template:
    return compile_template(text)


def template_problem(text: str) -> tuple[str, bool]:
    """(what is wrong with ``text``, whether it can be used at all): ('', True) for a good template."""
    try:
        template = _compiled(text)
    except TemplateError as exc:
        return str(exc), False
    bound = template.max_length_when({"DisplayName": None, "PolicyName": None, "RoleName": None},
                                     fixed={"Type": "IAM"})
    if bound is None or bound > IAM_MAX:
        return (f"it can produce names longer than IAM's limit of {IAM_MAX} characters, which coffer cuts to "
                f"{IAM_MAX}; end it with | truncate {IAM_MAX} to choose what is kept"), True
    return "", True


def _render(template_text: str, display_name: str, role_name: str, kind: str) -> str:
    return _compiled(template_text or DEFAULT_TEMPLATE).render({
        "DisplayName": _INVALID.sub("_", display_name),
        "PolicyName": _INVALID.sub("_", role_name),
        "RoleName": _INVALID.sub("_", role_name),
        "Type": kind,
    })


def iam_username(template_text: str, display_name: str, role_name: str) -> str:
    return _INVALID.sub("_", _render(template_text, display_name, role_name, "IAM"))[:IAM_MAX]


def sts_name(template_text: str, display_name: str, role_name: str, limit: int) -> str:
    """A session name (AssumeRole, at most 64) or federated user name (GetFederationToken, at most 32)."""
    name = _INVALID.sub("_", _render(template_text, display_name, role_name, "STS"))[:limit]
    return name if len(name) >= 2 else f"coffer-{os.urandom(4).hex()}"[:limit]


def constant_prefix(template_text: str, role_name: str) -> str:
    """What every IAM user name the template makes for ``role_name`` starts with, whoever asks.

    Rendered for a few different display names (and so different random parts), the names share this much.
    """
    names = [iam_username(template_text, display, role_name) for display in ("a0", "zz9", "Q_q", "m-4")]
    return os.path.commonprefix(names)


_RANDOM_FUNCTION = re.compile(r"{{[^}]*\b(?:random|uuid)\b")


def has_randomness(template_text: str) -> bool:
    """Whether names from this template (Vault's default when empty) carry random characters, so a name
    that already exists in IAM can only be one this very request made."""
    return not template_text or bool(_RANDOM_FUNCTION.search(template_text))
