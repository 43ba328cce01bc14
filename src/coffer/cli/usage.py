"""``coffer help <command>``, and what turns click's refusals into the answers a vault CLI user expects:
help for a bare group (exit 0), and "did you mean" for a mistyped single-dash flag."""

from __future__ import annotations

import difflib

import click


@click.command("help")
@click.argument("command", nargs=-1)
@click.pass_context
def help_(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Show the help of a command (the same as COMMAND -h).

    \b
    Examples:
      coffer help kv put
      coffer help operator rekey
    """
    current = ctx.find_root()
    for i, name in enumerate(command):
        group = current.command
        sub = group.get_command(current, name) if isinstance(group, click.Group) else None
        if sub is None:
            known = " ".join(command[:i]) or "coffer"
            raise click.UsageError(f'no such command "{" ".join(command[: i + 1])}"; see coffer {known} -h'.replace(
                "coffer coffer", "coffer"))
        current = click.Context(sub, info_name=name, parent=current)
    click.echo(current.get_help())


def _names(command: click.Command) -> list[str]:
    return [opt for param in command.params if isinstance(param, click.Option)
            for opt in (*param.opts, *param.secondary_opts)]


def single_dash_typo(exc: click.NoSuchOption, argv: list[str]) -> str | None:
    """click reads an unknown ``-formt=json`` as the short option ``-f`` and says only ``No such option '-f'``;
    the flags here are all long ones written with one dash (Vault's style), so say what the double-dash form
    would: the flag as typed, and the closest real ones."""
    name = exc.option_name
    if exc.ctx is None or len(name) != 2 or not name.startswith("-") or name == "--":
        return None
    command = exc.ctx.command
    known = _names(command)
    typed = next((a.split("=", 1)[0] for a in argv if a.startswith(name) and not a.startswith("--")
                  and a.split("=", 1)[0] not in known and len(a.split("=", 1)[0]) > 2), None)
    if typed is None:
        return None
    close = difflib.get_close_matches(typed, [k for k in known if not k.startswith("--")] or known, n=3)
    message = f"No such option '{typed}'."
    if close:
        message += f" (Did you mean {' or '.join(repr(c) for c in close)}?)"
    return message
