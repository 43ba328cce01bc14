"""IAM user names: Vault's default scheme, or the mount's ``username_template``."""

from __future__ import annotations

import re
from functools import lru_cache

from coffer.framework.template import Template, TemplateError, compile_template

#: Vault's default: vault-<display name>-<role>-<unix time>-<random>, at most 64 characters.
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


def check_template(text: str) -> None:
    """Refuse a template that does not parse or can make names over 64 characters."""
    try:
        template = _compiled(text)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    bound = template.max_length_when({"DisplayName": None, "PolicyName": None, "RoleName": None},
                                     fixed={"Type": "IAM"})
    if bound is None or bound > IAM_MAX:
        raise ValueError(
            f"it can produce names longer than IAM's limit of {IAM_MAX} characters; "
            f"end it with | truncate {IAM_MAX} (e.g. {{{{ printf \"app-%s\" (random 20) | truncate 64 }}}})"
        )


def iam_username(template_text: str, display_name: str, role_name: str) -> str:
    name = _compiled(template_text or DEFAULT_TEMPLATE).render({
        "DisplayName": _INVALID.sub("_", display_name),
        "PolicyName": _INVALID.sub("_", role_name),
        "RoleName": _INVALID.sub("_", role_name),
        "Type": "IAM",
    })
    return _INVALID.sub("_", name)[:IAM_MAX]


_RANDOM_FUNCTION = re.compile(r"{{[^}]*\b(?:random|uuid)\b")


def has_randomness(template_text: str) -> bool:
    """Whether names from this template (Vault's default when empty) carry random characters, so a name
    that already exists in IAM can only be one this very request made."""
    return not template_text or bool(_RANDOM_FUNCTION.search(template_text))
