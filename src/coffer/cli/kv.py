"""``coffer kv ...``: the kv engine's commands, for version 1 and version 2 mounts alike (as ``vault kv``).

Each command first asks the server which mount holds the path and which kv version it has
(``sys/internal/ui/mounts/<path>``), then uses that version's paths: ``secret/foo`` is ``secret/data/foo``
on version 2 and ``secret/foo`` on version 1. ``-mount=secret foo`` names the mount explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from coffer.cli.common import Env, api_command, flag, parse_pairs
from coffer.cli.output import pick, show_field, show_list, show_warnings, table
from coffer.client import ApiError

V2_ONLY = "K/V engine mount must be version 2 for {} support"


@dataclass(frozen=True)
class Target:
    """Where a kv path lives: its mount (``secret/``), the key inside it, and the mount's kv version."""

    mount: str
    key: str
    version: int

    def path(self, area: str) -> str:
        """The API path of ``key`` in a version 2 ``area`` (data, metadata...), or the key itself on version 1."""
        return f"{self.mount}{area}/{self.key}" if self.version == 2 else f"{self.mount}{self.key}"


def target(env: Env, path: str, mount: str | None) -> Target:
    """Ask the server which mount holds ``path`` (or ``mount``) and which kv version it has."""
    path = path.lstrip("/")
    probe = mount.strip("/") if mount else path
    if not probe:
        raise click.UsageError("give a secret path, e.g. secret/hello (or -mount=secret hello)")
    reply = env.client.request("GET", f"sys/internal/ui/mounts/{probe}", ok=(404,))
    if reply.status == 404 or not reply.body:  # a server without the endpoint: treat as version 1
        return Target(mount.strip("/") + "/" if mount else "", path, 1)
    data = reply.body.get("data") or {}
    mount_path = data.get("path") or (probe.split("/", 1)[0] + "/")
    version = 2 if str((data.get("options") or {}).get("version", "1")) == "2" else 1
    if mount:
        key = path
    elif path.startswith(mount_path):
        key = path[len(mount_path):]
    elif path + "/" == mount_path:  # the mount itself, written without its slash
        key = ""
    else:
        key = path
    return Target(mount_path, key.strip("/") if version == 2 else key, version)


def _need_v2(t: Target, what: str) -> None:
    if t.version != 2:
        click.echo(f"Error: {V2_ONLY.format(what)}", err=True)
        raise SystemExit(2)


def _versions(versions: str | None, *, required: bool) -> list[int]:
    items = [v.strip() for v in (versions or "").split(",") if v.strip()]
    if required and not items:
        raise click.UsageError('no versions given: use -versions, e.g. -versions=1,2')
    if not all(v.isdigit() for v in items):
        raise click.UsageError(f'-versions takes version numbers, e.g. -versions=1,2 (got "{versions}")')
    return [int(v) for v in items]


def section(title: str, body: str) -> str:
    """``== Title ==`` over ``body``, as the vault CLI heads the parts of a kv answer."""
    width = len(body.split("\n", 1)[0])
    pad = max(2, (width - len(title) - 2) // 2)
    return f"{'=' * pad} {title} {'=' * pad}\n{body}"


def _metadata_rows(metadata: dict[str, Any]) -> list[tuple[str, Any]]:
    """As vault kv shows them: an empty time is n/a, a missing map <nil>."""
    return [(key, "<nil>" if value is None else "n/a" if value == "" else value)
            for key, value in sorted(metadata.items())]


def _show_version(env: Env, t: Target, body: dict[str, Any]) -> None:
    """A version 2 answer (a write's metadata, or a read's data and metadata), the way vault kv shows it."""
    data = body.get("data") or {}
    metadata = data.get("metadata") if "metadata" in data else data
    parts = [section("Secret Path", t.path("data")), section("Metadata", table(_metadata_rows(metadata or {})))]
    if "metadata" in data and data.get("data") is not None:
        parts.append(section("Data", table(sorted(data["data"].items()))))
    click.echo("\n\n".join(parts))
    show_warnings(body)


def _no_value(path: str) -> None:
    click.echo(f"No value found at {path}", err=True)
    raise SystemExit(2)


@click.group()
def kv() -> None:
    """Read and write secrets of the kv engine, version 1 or 2 (as vault kv does).

    \b
    Examples:
      coffer kv put secret/hello foo=bar
      coffer kv get secret/hello
      coffer kv get -version=1 -field=foo secret/hello
      coffer kv metadata get secret/hello
    """


MOUNT = flag("mount", help="The kv mount, when PATH is relative to it (e.g. -mount=secret hello).")


@kv.command("get")
@click.argument("path")
@MOUNT
@flag("version", type=int, help="The version to read (version 2; default: the latest).")
@api_command
def get(env: Env, path: str, mount: str | None, version: int | None) -> None:
    """Read a secret (its latest version, or -version).

    \b
    Examples:
      coffer kv get secret/hello
      coffer kv get -version=2 -field=foo secret/hello
      coffer kv get -mount=secret hello
    """
    t = target(env, path, mount)
    api = t.path("data")
    params = {"version": version} if version and t.version == 2 else None
    reply = env.client.request("GET", api, params=params, ok=(404,))
    body = reply.body
    data = (body or {}).get("data") if isinstance(body, dict) else None
    if reply.status == 404 and not (t.version == 2 and isinstance(data, dict) and data.get("metadata")):
        _no_value(api)
    if body is None:
        _no_value(api)
    if env.field:
        values = data.get("data") if t.version == 2 and isinstance(data, dict) else data
        if isinstance(values, dict) and env.field in values:
            show_field(values[env.field], env.format)
        else:
            show_field(pick({"data": (data or {}).get("metadata") if t.version == 2 else data}, env.field),
                       env.format)
        return
    if env.format != "table":
        env.show(body)
    elif t.version == 2:
        _show_version(env, t, body)
    else:
        click.echo(section("Data", table(sorted((data or {}).items()))))
        show_warnings(body)
    if reply.status == 404:  # a deleted or destroyed version: its metadata was shown
        click.echo(f"\nThe version at {api} was deleted or destroyed; its data cannot be read", err=True)
        raise SystemExit(2)


def _write_answer(env: Env, t: Target, body: Any, api: str) -> None:
    if t.version == 2 and body is not None:
        if env.field:
            show_field(pick(body, env.field), env.format)
        elif env.format != "table":
            env.show(body)
        else:
            _show_version(env, t, body)
        return
    if body is not None and env.raw:
        env.show(body)
        return
    show_warnings(body)
    click.echo(f"Success! Data written to: {api}")


@kv.command("put")
@click.argument("path")
@click.argument("pairs", nargs=-1)
@MOUNT
@flag("cas", type=int, help="Write only if the secret is at this version (0: only if it does not exist).")
@api_command
def put(env: Env, path: str, pairs: tuple[str, ...], mount: str | None, cas: int | None) -> None:
    """Write a secret (a new version, on version 2): K=V, K=@file, K=- (stdin), or - for JSON on stdin.

    \b
    Examples:
      coffer kv put secret/hello foo=bar
      coffer kv put -cas=1 secret/hello foo=baz
      echo '{"foo": "bar"}' | coffer kv put secret/hello -
    """
    data = parse_pairs(pairs)
    if not data:
        raise click.UsageError("no data given: write at least one K=V pair")
    t = target(env, path, mount)
    api = t.path("data")
    if t.version == 2:
        body: dict[str, Any] = {"data": data}
        if cas is not None:
            body["options"] = {"cas": cas}
        _write_answer(env, t, env.client.write(api, body), api)
    else:
        _write_answer(env, t, env.client.write(api, data), api)


@kv.command("patch")
@click.argument("path")
@click.argument("pairs", nargs=-1)
@MOUNT
@flag("cas", type=int, help="Patch only if the secret is at this version.")
@flag("method", type=click.Choice(["patch", "rw"]), default="patch", show_default=True,
      help="patch: an HTTP PATCH (needs the patch capability); rw: read, merge here, write back with -cas.")
@api_command
def patch(env: Env, path: str, pairs: tuple[str, ...], mount: str | None, cas: int | None, method: str) -> None:
    """Change some keys of a secret, keeping the others (version 2 only).

    \b
    Examples:
      coffer kv patch secret/hello foo=changed
      coffer kv patch -method=rw secret/hello extra=1
    """
    data = parse_pairs(pairs)
    if not data:
        raise click.UsageError("no data given: patch at least one K=V pair")
    t = target(env, path, mount)
    _need_v2(t, "patch")
    api = t.path("data")
    if method == "rw":
        reply = env.client.request("GET", api, ok=(404,))
        current = ((reply.body or {}).get("data") or {}) if reply.status == 200 else {}
        if not current.get("data"):
            _no_value(api)
        merged = {**current["data"], **data}
        version = current["metadata"]["version"] if cas is None else cas
        answer = env.client.write(api, {"data": merged, "options": {"cas": version}})
    else:
        body: dict[str, Any] = {"data": data}
        if cas is not None:
            body["options"] = {"cas": cas}
        try:
            answer = env.client.patch(api, body)
        except ApiError as exc:
            if exc.status == 404:
                _no_value(api)
            raise
    _write_answer(env, t, answer, api)


@kv.command("delete")
@click.argument("path")
@MOUNT
@flag("versions", help="Soft-delete these versions (e.g. 1,2) instead of the latest (version 2).")
@api_command
def delete(env: Env, path: str, mount: str | None, versions: str | None) -> None:
    """Delete a secret: on version 2, soft-delete its latest version (or -versions); undelete restores them.

    \b
    Examples:
      coffer kv delete secret/hello
      coffer kv delete -versions=1,2 secret/hello
    """
    t = target(env, path, mount)
    numbers = _versions(versions, required=False)
    if t.version == 2 and numbers:
        api = t.path("delete")
        env.client.write(api, {"versions": numbers})
    else:
        api = t.path("data")
        env.client.delete(api)
    click.echo(f"Success! Data deleted (if it existed) at: {api}")


def _version_change(env: Env, path: str, mount: str | None, versions: str | None, area: str) -> None:
    numbers = _versions(versions, required=True)
    t = target(env, path, mount)
    _need_v2(t, area)
    api = t.path(area)
    env.client.write(api, {"versions": numbers})
    click.echo(f"Success! Data written to: {api}")


@kv.command("undelete")
@click.argument("path")
@MOUNT
@flag("versions", help="The versions to restore, e.g. 1,2 (required).")
@api_command
def undelete(env: Env, path: str, mount: str | None, versions: str | None) -> None:
    """Restore soft-deleted versions of a secret (version 2 only).

    \b
    Example:
      coffer kv undelete -versions=3 secret/hello
    """
    _version_change(env, path, mount, versions, "undelete")


@kv.command("destroy")
@click.argument("path")
@MOUNT
@flag("versions", help="The versions to destroy, e.g. 1,2 (required).")
@api_command
def destroy(env: Env, path: str, mount: str | None, versions: str | None) -> None:
    """Remove versions of a secret for good (version 2 only).

    \b
    Example:
      coffer kv destroy -versions=1,2 secret/hello
    """
    _version_change(env, path, mount, versions, "destroy")


@kv.command("list")
@click.argument("path", default="")
@MOUNT
@api_command
def list_(env: Env, path: str, mount: str | None) -> None:
    """List the keys under a folder.

    \b
    Examples:
      coffer kv list secret/
      coffer kv list -format=json secret/team
    """
    t = target(env, path, mount)
    api = t.path("metadata")
    if not api.endswith("/"):
        api += "/"
    reply = env.client.request("LIST", api, ok=(404,))
    if reply.status == 404:
        _no_value(api)
    show_list(reply.body, env.format)


@kv.group("metadata")
def metadata() -> None:
    """Read and change the metadata of a version 2 secret: its versions and settings.

    \b
    Examples:
      coffer kv metadata get secret/hello
      coffer kv metadata put -max-versions=5 -custom-metadata=owner=ops secret/hello
      coffer kv metadata delete secret/hello
    """


def _metadata_target(env: Env, path: str, mount: str | None) -> Target:
    t = target(env, path, mount)
    if t.version != 2:
        click.echo("Error: Metadata not supported on KV Version 1", err=True)
        raise SystemExit(2)
    return t


@metadata.command("get")
@click.argument("path")
@MOUNT
@api_command
def metadata_get(env: Env, path: str, mount: str | None) -> None:
    """Show a secret's versions and settings.

    \b
    Example:
      coffer kv metadata get secret/hello
    """
    t = _metadata_target(env, path, mount)
    api = t.path("metadata")
    reply = env.client.request("GET", api, ok=(404,))
    if reply.status == 404 or reply.body is None:
        _no_value(api)
    body = reply.body
    if env.raw:
        env.show(body)
        return
    data = dict(body["data"])
    versions = data.pop("versions", {}) or {}
    parts = [section("Metadata Path", api), section("Metadata", table(_metadata_rows(data)))]
    for number, info in sorted(versions.items(), key=lambda item: int(item[0])):
        parts.append(section(f"Version {number}", table(_metadata_rows(info))))
    click.echo("\n\n".join(parts))


def _settings(max_versions: int | None, cas_required: bool | None, delete_version_after: str | None,
              custom_metadata: tuple[str, ...]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if max_versions is not None:
        body["max_versions"] = max_versions
    if cas_required is not None:
        body["cas_required"] = cas_required
    if delete_version_after is not None:
        body["delete_version_after"] = delete_version_after
    if custom_metadata:
        pairs = {}
        for item in custom_metadata:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise click.UsageError(f'-custom-metadata takes K=V, got "{item}"')
            pairs[key] = value
        body["custom_metadata"] = pairs
    return body


def _settings_flags(fn: Any) -> Any:
    fn = flag("custom-metadata", multiple=True, help="Your own K=V metadata (repeatable).")(fn)
    fn = flag("delete-version-after", help="Soft-delete each new version after this long, e.g. 30d (0s: never).")(fn)
    fn = flag("cas-required", type=click.BOOL, help="Require -cas on every write (true or false).")(fn)
    return flag("max-versions", type=int, help="How many versions to keep (0: the mount's setting).")(fn)


@metadata.command("put")
@click.argument("path")
@MOUNT
@_settings_flags
@api_command
def metadata_put(env: Env, path: str, mount: str | None, max_versions: int | None, cas_required: bool | None,
                 delete_version_after: str | None, custom_metadata: tuple[str, ...]) -> None:
    """Set a secret's settings (a secret without versions may be given settings first).

    \b
    Example:
      coffer kv metadata put -max-versions=5 -cas-required=true -custom-metadata=owner=ops secret/hello
    """
    t = _metadata_target(env, path, mount)
    api = t.path("metadata")
    env.client.write(api, _settings(max_versions, cas_required, delete_version_after, custom_metadata))
    click.echo(f"Success! Data written to: {api}")


@metadata.command("patch")
@click.argument("path")
@MOUNT
@_settings_flags
@api_command
def metadata_patch(env: Env, path: str, mount: str | None, max_versions: int | None, cas_required: bool | None,
                   delete_version_after: str | None, custom_metadata: tuple[str, ...]) -> None:
    """Change only the given settings of a secret (custom metadata is merged).

    \b
    Example:
      coffer kv metadata patch -custom-metadata=tier=1 secret/hello
    """
    t = _metadata_target(env, path, mount)
    api = t.path("metadata")
    env.client.patch(api, _settings(max_versions, cas_required, delete_version_after, custom_metadata))
    click.echo(f"Success! Data written to: {api}")


@metadata.command("delete")
@click.argument("path")
@MOUNT
@api_command
def metadata_delete(env: Env, path: str, mount: str | None) -> None:
    """Delete a secret with every version and its metadata, for good.

    \b
    Example:
      coffer kv metadata delete secret/hello
    """
    t = _metadata_target(env, path, mount)
    api = t.path("metadata")
    env.client.delete(api)
    click.echo(f"Success! Data deleted (if it existed) at: {api}")
