"""Vault-style username templates: a small, safe subset of Go's ``text/template``.

Secrets engines that mint dynamic users (the AWS engine's IAM users, database
users, ...) let operators shape the generated name with a template such as::

    {{ printf "vault-%s-%s" (.DisplayName | truncate 16) (random 20) | truncate 64 }}

This package implements the language Vault documents for that ("Username
templating"): literal text, ``{{ pipeline }}`` actions, ``{{-``/``-}}`` trim
markers, ``{{/* comments */}}``, ``if``/``else if``/``else``/``end``,
pipelines ``a | f x`` (the previous value becomes the *last* argument, as in
Go), parenthesised sub-pipelines, string literals (``"..."`` with Go escapes
and raw backquoted strings), integer literals, ``true``/``false`` and field
references ``.Name`` looked up in the context mapping.

Functions: Vault's helpers ``random``, ``truncate``, ``truncate_sha256``,
``uppercase``, ``lowercase``, ``replace``, ``sha256``, ``base64``, ``uuid``,
``unix_time``, ``unix_time_millis`` and ``timestamp``, plus Go's built-ins
``printf``, ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``and``, ``or`` and
``not``.

Public API (the names in ``__all__``; the modules behind them are internal)::

    tpl = compile_template(text)            # raises TemplateError
    tpl.render(context, now=None) -> str    # raises TemplateError
    tpl.max_length(field_bounds, fixed=None) -> int | None
    tpl.max_length_when(field_bounds, fixed) -> int | None
    tpl.fields -> frozenset[str]            # field names the template references

Nothing is evaluated with Python's ``eval``; there is no attribute or method
access, no variables, no loops and no template inclusion.  Work is bounded: the
template text is at most :data:`MAX_TEMPLATE_LENGTH` characters, ``if`` and
parenthesis nesting is at most :data:`MAX_NESTING_DEPTH`, ``random`` and
``printf`` widths are capped, and functions that can grow a value (``printf``,
``replace``, ``base64``) refuse to produce more than :data:`MAX_VALUE_LENGTH`
characters beyond what they were given.

Deviations from Go/Vault (all deliberate):

* Strings are sequences of Unicode code points, not bytes: ``truncate`` and
  ``truncate_sha256`` never split a character and lengths count characters
  (identical for ASCII).  ``uppercase``/``lowercase`` map character by
  character, so they never change the length (like Go's simple case mapping).
* Unknown functions, arity errors, literal arguments of the wrong type, a
  constant ``printf`` format whose verbs do not match its arguments, and
  constant out-of-range arguments (``truncate 0``) are reported when the
  template is compiled, even inside a branch that would never run.
* ``printf`` raises :class:`TemplateError` where Go would print an error
  marker such as ``%!d(...)``, and supports only ``%s %v %d %%`` (see
  :mod:`.printf`).
* ``timestamp`` formats in UTC (Vault uses the server's local zone); all
  time functions in one ``render`` call see the same instant.
* ``uuid`` returns a random (version 4) UUID.
* Missing fields raise :class:`TemplateError`, as they do for Vault's structs;
  context values must be strings.

Modules, in the order a template goes through them: :mod:`.lexer` (text and
tokens), :mod:`.parser` (the tree of :mod:`.nodes`), :mod:`.compiler`
(type checks and closures that render), with :mod:`.functions`,
:mod:`.printf` and :mod:`.timelayout` implementing the functions, and
:mod:`.length` computing ``max_length``.  :mod:`.api` holds the entry points.
"""

from __future__ import annotations

from .api import Template, compile_template
from .errors import TemplateError
from .limits import MAX_NESTING_DEPTH, MAX_TEMPLATE_LENGTH, MAX_VALUE_LENGTH

__all__ = [
    "MAX_NESTING_DEPTH",
    "MAX_TEMPLATE_LENGTH",
    "MAX_VALUE_LENGTH",
    "Template",
    "TemplateError",
    "compile_template",
]
