"""The key/value engine, version 2: every write of a secret is a new version, kept with its history.

Paths inside the mount (Vault's): ``data/<path>`` (read a version, write a new one, patch, soft-delete the
latest), ``metadata/<path>`` (the versions and the key's settings; list; delete everything),
``delete/``, ``undelete/`` and ``destroy/<path>`` (by version number), ``subkeys/<path>`` (the shape of a
version without its values) and ``config`` (the mount's defaults).

Storage, all under ``common.V2_PREFIX`` inside the mount:

* ``meta/<path>``: one JSON document per key: its settings, ``current_version``, ``oldest_version``, and
  every kept version's ``created_time``, ``deletion_time`` (nanoseconds, 0 when not deleted) and ``destroyed``;
* ``versions/<sha256 of path>/<n>``: ``{"data": ...}`` of version n (gone once destroyed or trimmed);
* ``config``: the mount's ``max_versions``, ``cas_required`` and ``delete_version_after``;
* ``upgraded``: written once the storage has this layout (see ``upgrade``).

A change of a key is one conditional batch on its metadata document (framework storage ``Expect``), so two
writers racing with the same ``cas`` cannot both win.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import orjson

from coffer.durations import format_duration
from coffer.engines.kv import upgrade
from coffer.engines.kv.common import META, V2_PREFIX, check_key_text, new_meta, rfc3339_ns, version_key
from coffer.errors import InvalidRequest, NotFound, RetryLater
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import HELP as HELP_OP
from coffer.framework.request import LIST, PATCH, READ, Request, Response
from coffer.storage.base import ConditionFailed, Delete, Expect, Op, Put

S, I, B, D, M, L = (FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.DURATION, FieldType.MAP,
                    FieldType.COMMA_LIST)

CONFIG = V2_PREFIX + "config"
#: How many versions a key keeps when neither the mount nor the key says (Vault's default).
DEFAULT_MAX_VERSIONS = 10
#: Limits of custom_metadata (Vault's).
CUSTOM_KEYS, CUSTOM_KEY_LEN, CUSTOM_VALUE_LEN = 64, 128, 512
#: How often a change that lost a race with another writer is tried again.
ATTEMPTS = 10

HELP = """The kv secrets engine, version 2: versioned secrets.

Every write of a secret creates a new version; older versions stay readable
until they are trimmed (max_versions), deleted (which can be undone) or
destroyed (which cannot). Check-and-set (cas) makes a write succeed only if
the secret is still at the version the writer last saw.

    data/<path>       read a version (?version=N), write a new one, PATCH it, delete the latest
    metadata/<path>   the key's versions and settings; LIST a folder; DELETE removes every version
    delete/<path>     soft-delete versions      undelete/<path>   restore soft-deleted versions
    destroy/<path>    remove versions for good  subkeys/<path>    the keys of a version, no values
    config            the mount's defaults: max_versions, cas_required, delete_version_after

The coffer CLI's kv commands (coffer kv get, put, patch, ...) use these paths."""

PATH_FIELD = "The secret's path inside the mount, e.g. app/db (the part after data/, metadata/, ...)."
VERSIONS_FIELD = "The version numbers to act on, as a list ([1, 2]) or comma-separated text (\"1,2\")."


def _now() -> int:
    return time.time_ns()


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386): objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def subkeys(value: dict[str, Any], depth: int, level: int = 1) -> dict[str, Any]:
    """The keys of ``value``, nested objects followed down to ``depth`` levels (0: all), every leaf null."""
    return {k: subkeys(v, depth, level + 1) if isinstance(v, dict) and (not depth or level < depth) else None
            for k, v in value.items()}


# --------------------------------------------------------------------------- stored documents


def _deleted(version: dict[str, Any], now: int) -> bool:
    return bool(version["deletion_time"]) and version["deletion_time"] <= now


def _version_view(meta: dict[str, Any], n: int) -> dict[str, Any]:
    v = meta["versions"][str(n)]
    return {"created_time": rfc3339_ns(v["created_time"]), "custom_metadata": meta["custom_metadata"],
            "deletion_time": rfc3339_ns(v["deletion_time"]), "destroyed": v["destroyed"], "version": n}


def _meta_view(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "cas_required": meta["cas_required"],
        "created_time": rfc3339_ns(meta["created_time"]),
        "current_version": meta["current_version"],
        "custom_metadata": meta["custom_metadata"],
        "delete_version_after": format_duration(meta["delete_version_after"]),
        "max_versions": meta["max_versions"],
        "oldest_version": meta["oldest_version"],
        "updated_time": rfc3339_ns(meta["updated_time"]),
        "versions": {n: {"created_time": rfc3339_ns(v["created_time"]),
                         "deletion_time": rfc3339_ns(v["deletion_time"]), "destroyed": v["destroyed"]}
                     for n, v in sorted(meta["versions"].items(), key=lambda item: int(item[0]))},
    }


async def load_config(req: Request) -> dict[str, Any]:
    stored = await req.storage.get_json(CONFIG) or {}
    return {"max_versions": 0, "cas_required": False, "delete_version_after": 0, **stored}


def _trim(key: str, meta: dict[str, Any], config: dict[str, Any]) -> list[Op]:
    """Drop the oldest versions beyond the larger of the key's and the mount's max_versions."""
    limit = max(config["max_versions"], meta["max_versions"]) or DEFAULT_MAX_VERSIONS
    kept = sorted(int(n) for n in meta["versions"])
    ops: list[Op] = []
    while len(kept) > limit:
        n = kept.pop(0)
        del meta["versions"][str(n)]
        ops.append(Delete(version_key(key, n)))
    if ops:
        meta["oldest_version"] = kept[0]
    return ops


class _Loaded:
    """A key's metadata as read, to be changed and committed only if nobody changed it meanwhile."""

    def __init__(self, key: str, raw: bytes | None) -> None:
        self.key, self.raw = key, raw
        self.meta: dict[str, Any] | None = orjson.loads(raw) if raw is not None else None

    def expect(self) -> list[Expect]:
        path = META + self.key
        return [Expect(path, self.raw)] if self.raw is not None else [Expect(path, exists=False)]


async def _load(req: Request, key: str) -> _Loaded:
    return _Loaded(key, await req.storage.get(META + key))


async def _commit(req: Request, loaded: _Loaded, ops: list[Op]) -> bool:
    try:
        await req.storage.batch(ops, loaded.expect())
    except ConditionFailed:
        return False
    return True


#: One read-modify-write of a secret's metadata at a time in this process, per mount and key. The conditional
#: write keeps changes correct anyway; this keeps concurrent writers of one key from losing their races again
#: and again (with SQLite's group commit, every writer in a transaction had read the same metadata).
_WRITERS: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()


def _one_writer(req: Request, key: str) -> asyncio.Lock:
    ident = (req.storage.prefix, key)
    lock = _WRITERS.get(ident)
    if lock is None:
        lock = _WRITERS[ident] = asyncio.Lock()
    return lock


def _lost_race(key: str) -> RetryLater:
    return RetryLater(f'the secret "{key}" kept changing while this request tried to change it; retry')


# --------------------------------------------------------------------------- checks of input


def _key(d: FieldData, *, writing: bool = False) -> str:
    key = d["path"] or ""
    if writing and (not key or key.endswith("/")):
        raise InvalidRequest("a secret path is required (a folder, ending in /, cannot hold data)")
    return check_key_text(key) if writing else key


def _cas(d: FieldData) -> int | None:
    options = d["options"] or {}
    if "cas" not in options or options["cas"] is None:
        return None
    cas = options["cas"]
    if isinstance(cas, str) and cas.strip().isdigit():
        cas = int(cas)
    if isinstance(cas, bool) or not isinstance(cas, int) or cas < 0:
        raise InvalidRequest(f'invalid value for options.cas: {cas!r} is not a version number (0 or more)')
    return cas


def _check_cas(meta: dict[str, Any], config: dict[str, Any], cas: int | None) -> None:
    if cas is None:
        if meta["cas_required"] or config["cas_required"]:
            raise InvalidRequest("check-and-set parameter required for this call")
    elif cas != meta["current_version"]:
        raise InvalidRequest("check-and-set parameter did not match the current version")


def _versions(d: FieldData, missing: str) -> list[int]:
    numbers: list[int] = []
    for item in d["versions"] or []:
        if not item.strip().isdigit():
            raise InvalidRequest(f'invalid version number "{item}" in versions: give whole numbers, e.g. [1, 2]')
        numbers.append(int(item))
    if not numbers:
        raise InvalidRequest(missing)
    return numbers


def _custom_metadata(value: Any, *, patch: bool = False) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest("custom_metadata must be an object of string keys and string values")
    problems = []
    if len(value) > CUSTOM_KEYS:
        problems.append(f"it has {len(value)} keys, at most {CUSTOM_KEYS} are allowed")
    for k, v in value.items():
        if not k or len(k) > CUSTOM_KEY_LEN:
            problems.append(f'key "{k[:40]}" must have 1 to {CUSTOM_KEY_LEN} characters')
        if v is None and patch:
            continue
        if not isinstance(v, str):
            problems.append(f'the value of "{k}" must be a string')
        elif len(v) > CUSTOM_VALUE_LEN:
            problems.append(f'the value of "{k}" is longer than {CUSTOM_VALUE_LEN} characters')
    if problems:
        raise InvalidRequest("custom_metadata is not valid: " + "; ".join(problems))
    return value


def _non_negative(d: FieldData, name: str) -> int:
    value = d[name]
    if value < 0:
        raise InvalidRequest(f'invalid value for field "{name}": it cannot be negative')
    return int(value)


# --------------------------------------------------------------------------- data/


async def _exists(req: Request, captures: dict[str, str]) -> bool:
    key = captures.get("path", "")
    return bool(key) and await req.storage.get(META + key) is not None


async def _read_data(req: Request, d: FieldData) -> Response | None:
    loaded = await _load(req, _key(d))
    meta = loaded.meta
    if meta is None:
        return None
    n = d["version"] if "version" in d and d["version"] else meta["current_version"]
    if n < 0:
        raise InvalidRequest('invalid value for field "version": it cannot be negative')
    if str(n) not in meta["versions"]:
        return None
    version = meta["versions"][str(n)]
    view = _version_view(meta, n)
    if version["destroyed"] or _deleted(version, _now()):
        return Response(data={"data": None, "metadata": view}, status=404)
    stored = await req.storage.get_json(version_key(loaded.key, n))
    if stored is None:
        return None
    return Response(data={"data": stored["data"], "metadata": view})


async def _write_version(req: Request, key: str, cas: int | None, make: Any) -> Response:
    """Add a version whose data is ``make(current data or None, meta)``; answers the new version's metadata."""
    async with _one_writer(req, key):
        for _ in range(ATTEMPTS):
            loaded = await _load(req, key)
            config = await load_config(req)
            now = _now()
            meta = loaded.meta or new_meta(now)
            _check_cas(meta, config, cas)
            data = await make(loaded, meta, now)
            n = meta["current_version"] + 1
            after = [s for s in (meta["delete_version_after"], config["delete_version_after"]) if s > 0]
            meta["versions"][str(n)] = {"created_time": now, "deletion_time": now + min(after) * 1_000_000_000
                                        if after else 0, "destroyed": False}
            meta["current_version"], meta["updated_time"] = n, now
            ops: list[Op] = [Put(version_key(key, n), orjson.dumps({"data": data}))]
            ops += _trim(key, meta, config)
            ops.append(Put(META + key, orjson.dumps(meta)))
            if await _commit(req, loaded, ops):
                return Response(data=_version_view(meta, n))
        raise _lost_race(key)


async def _write_data(req: Request, d: FieldData) -> Response:
    key = _key(d, writing=True)
    if "data" not in d:
        raise InvalidRequest("no data provided")
    data = d["data"]

    async def replace(loaded: _Loaded, meta: dict[str, Any], now: int) -> Any:
        return data

    return await _write_version(req, key, _cas(d), replace)


async def _patch_data(req: Request, d: FieldData) -> Response:
    key = _key(d, writing=True)
    if "data" not in d:
        raise InvalidRequest("no data provided")
    patch = d["data"]

    async def merged(loaded: _Loaded, meta: dict[str, Any], now: int) -> Any:
        n = meta["current_version"]
        version = meta["versions"].get(str(n))
        stored = None
        if loaded.meta is not None and version is not None and not version["destroyed"] \
                and not _deleted(version, now):
            stored = await req.storage.get_json(version_key(key, n))
        if stored is None:
            raise NotFound(f'no secret at "{req.mount_point}data/{key}" to patch: its current version does '
                           "not exist or was deleted; write it first (PUT/POST)")
        return merge_patch(stored["data"], patch)

    return await _write_version(req, key, _cas(d), merged)


async def _delete_latest(req: Request, d: FieldData) -> None:
    key = _key(d, writing=True)
    async with _one_writer(req, key):
        for _ in range(ATTEMPTS):
            loaded = await _load(req, key)
            meta = loaded.meta
            if meta is None or str(meta["current_version"]) not in meta["versions"]:
                return
            version = meta["versions"][str(meta["current_version"])]
            now = _now()
            if version["destroyed"] or _deleted(version, now):
                return
            version["deletion_time"] = now
            if await _commit(req, loaded, [Put(META + key, orjson.dumps(meta))]):
                return
        raise _lost_race(key)


# --------------------------------------------------------------------------- delete/ undelete/ destroy/


async def _change_versions(req: Request, key: str, numbers: list[int], action: str) -> None:
    async with _one_writer(req, key):
        for _ in range(ATTEMPTS):
            loaded = await _load(req, key)
            meta = loaded.meta
            if meta is None:
                return
            now = _now()
            ops: list[Op] = []
            changed = False
            for n in numbers:
                version = meta["versions"].get(str(n))
                if version is None or version["destroyed"]:
                    continue
                if action == "delete" and not _deleted(version, now):
                    version["deletion_time"], changed = now, True
                elif action == "undelete" and version["deletion_time"]:
                    version["deletion_time"], changed = 0, True
                elif action == "destroy":
                    version["destroyed"], changed = True, True
                    ops.append(Delete(version_key(key, n)))
            if not changed:
                return
            if await _commit(req, loaded, [*ops, Put(META + key, orjson.dumps(meta))]):
                return
        raise _lost_race(key)


async def _delete_versions(req: Request, d: FieldData) -> None:
    await _change_versions(req, _key(d, writing=True), _versions(d, "No version number provided"), "delete")


async def _undelete_versions(req: Request, d: FieldData) -> None:
    await _change_versions(req, _key(d, writing=True), _versions(d, "No version number provided"), "undelete")


async def _destroy_versions(req: Request, d: FieldData) -> None:
    await _change_versions(req, _key(d, writing=True), _versions(d, "no version number provided"), "destroy")


# --------------------------------------------------------------------------- metadata/


async def _read_metadata(req: Request, d: FieldData) -> Response | None:
    meta = (await _load(req, _key(d))).meta
    return None if meta is None else Response(data=_meta_view(meta))


async def _list_metadata(req: Request, d: FieldData) -> Response:
    prefix = _key(d)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return Response(data={"keys": await req.storage.list(META + prefix)})


def _apply_settings(meta: dict[str, Any], d: FieldData, *, patch: bool) -> None:
    if "max_versions" in d:
        meta["max_versions"] = _non_negative(d, "max_versions")
    if "cas_required" in d:
        meta["cas_required"] = bool(d["cas_required"])
    if "delete_version_after" in d:
        meta["delete_version_after"] = _non_negative(d, "delete_version_after")
    if "custom_metadata" in d:
        given = _custom_metadata(d["custom_metadata"], patch=patch)
        if patch:
            merged = merge_patch(meta["custom_metadata"] or {}, given)
            meta["custom_metadata"] = _custom_metadata(merged) or None
        else:
            meta["custom_metadata"] = dict(given) or None


async def _write_metadata(req: Request, d: FieldData, *, patch: bool = False) -> None:
    key = _key(d, writing=True)
    async with _one_writer(req, key):
        for _ in range(ATTEMPTS):
            loaded = await _load(req, key)
            now = _now()
            if loaded.meta is None and patch:
                raise NotFound(f'no metadata at "{req.mount_point}metadata/{key}" to patch; write the secret or '
                               "its metadata first")
            meta = loaded.meta or new_meta(now)
            _apply_settings(meta, d, patch=patch)
            meta["updated_time"] = now
            ops = _trim(key, meta, await load_config(req))
            if await _commit(req, loaded, [*ops, Put(META + key, orjson.dumps(meta))]):
                return
        raise _lost_race(key)


async def _patch_metadata(req: Request, d: FieldData) -> None:
    await _write_metadata(req, d, patch=True)


async def _delete_metadata(req: Request, d: FieldData) -> None:
    key = _key(d, writing=True)
    async with _one_writer(req, key):
        for _ in range(ATTEMPTS):
            loaded = await _load(req, key)
            if loaded.meta is None:
                return
            ops: list[Op] = [Delete(version_key(key, int(n))) for n in loaded.meta["versions"]]
            if await _commit(req, loaded, [*ops, Delete(META + key)]):
                return
        raise _lost_race(key)


# --------------------------------------------------------------------------- subkeys/ and config


async def _read_subkeys(req: Request, d: FieldData) -> Response | None:
    depth = _non_negative(d, "depth")
    answer = await _read_data(req, d)
    if answer is None or answer.data is None:
        return answer
    value = answer.data["data"]
    shape = subkeys(value, depth) if isinstance(value, dict) else None
    return Response(data={"subkeys": shape, "metadata": answer.data["metadata"]}, status=answer.status)


async def _read_config(req: Request, d: FieldData) -> Response:
    config = await load_config(req)
    return Response(data={"cas_required": config["cas_required"],
                          "delete_version_after": format_duration(config["delete_version_after"]),
                          "max_versions": config["max_versions"]})


async def _write_config(req: Request, d: FieldData) -> None:
    config = await load_config(req)
    if "max_versions" in d:
        config["max_versions"] = _non_negative(d, "max_versions")
    if "cas_required" in d:
        config["cas_required"] = bool(d["cas_required"])
    if "delete_version_after" in d:
        config["delete_version_after"] = _non_negative(d, "delete_version_after")
    await req.storage.put_json(CONFIG, config)


# --------------------------------------------------------------------------- anything else

_CLI_VERB = {READ: "get", LIST: "list", PATCH: "patch", "delete": "delete"}


async def _elsewhere(req: Request, d: FieldData) -> Response:
    verb = _CLI_VERB.get(req.operation, "put")
    return Response(status=404, warnings=[
        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints "
        f"to use. If using the coffer CLI, use 'coffer kv {verb}' for this operation."])


def _path_field() -> dict[str, Field]:
    return {"path": Field(S, PATH_FIELD)}


SETTINGS = {
    "max_versions": Field(I, "How many versions of this key to keep; the oldest go first. The larger of this "
                             "and the mount's max_versions applies; 0 leaves it to the mount (10 when neither "
                             "is set)."),
    "cas_required": Field(B, "When true, every write of this key must give options.cas (check-and-set), "
                             "as when the mount's cas_required is true."),
    "delete_version_after": Field(D, "How long after its creation each new version is soft-deleted, e.g. "
                                     "30d or 1h (0s: never). The mount's value applies when it is shorter."),
}


class KVv2(Backend):
    """The version 2 paths; the first request (or tick) after a mount becomes version 2 upgrades its storage."""

    def __init__(self) -> None:
        super().__init__(_paths(), help=HELP)
        self.layout = upgrade.Layout()

    async def resolve(self, req: Request) -> str:
        await self.layout.ensure(req.storage, req.mount_point)
        return await super().resolve(req)

    async def handle(self, req: Request) -> Response | None:
        if req.operation != HELP_OP:
            await self.layout.ensure(req.storage, req.mount_point)
        return await super().handle(req)


def _paths() -> list[Path]:
    return [
        Path("config", {"read": _read_config, "write": _write_config}, {
            "max_versions": Field(I, "How many versions every key keeps unless its own max_versions is "
                                     "larger (0: the default, 10)."),
            "cas_required": Field(B, "When true, every write to data/ must give options.cas (check-and-set)."),
            "delete_version_after": Field(D, "How long after its creation every new version is soft-deleted, "
                                             "e.g. 30d (0s: never); a key's own shorter value wins."),
        }, synopsis="The mount's defaults for every key.",
           description="Read or set max_versions, cas_required and delete_version_after for the whole mount."),
        Path(r"data/(?P<path>.*)", {"read": _read_data, "write": _write_data, "patch": _patch_data,
                                    "delete": _delete_latest}, {
            **_path_field(),
            "data": Field(M, "The secret: a JSON object of any keys and values. A write stores it as the new "
                             "version; a PATCH merges it into the current version (JSON merge patch: null "
                             "removes a key)."),
            "options": Field(M, "Write options; options.cas is the version the secret must be at for the write "
                                "to succeed (check-and-set; 0: only if the secret does not exist yet)."),
            "version": Field(I, "On a read: the version to return (default: the latest)."),
        }, exists=_exists, synopsis="Read, write, patch or soft-delete a version of a secret.",
           description="GET returns the latest version (or ?version=N) with its metadata; a deleted or "
                       "destroyed version answers 404 with its metadata. POST/PUT writes a new version. PATCH "
                       "(Content-Type application/merge-patch+json) merges into the current version. DELETE "
                       "soft-deletes the latest version (undelete/ restores it)."),
        Path(r"metadata/(?P<path>.*)", {"read": _read_metadata, "write": _write_metadata,
                                        "patch": _patch_metadata, "delete": _delete_metadata,
                                        "list": _list_metadata}, {
            **_path_field(),
            **SETTINGS,
            "custom_metadata": Field(M, "Your own string key/value pairs about this key (at most 64 pairs; keys "
                                        "up to 128 characters, values up to 512). A write replaces them; a PATCH "
                                        "merges (null removes a pair)."),
        }, exists=_exists, synopsis="A key's versions and settings; LIST a folder of keys.",
           description="GET shows every kept version (created_time, deletion_time, destroyed) and the key's "
                       "settings. POST sets max_versions, cas_required, delete_version_after and "
                       "custom_metadata; PATCH changes only the fields given. DELETE removes the key with all "
                       "its versions, for good. LIST metadata/<folder>/ shows the keys under a folder."),
        Path(r"delete/(?P<path>.*)", {"write": _delete_versions}, {
            **_path_field(), "versions": Field(L, VERSIONS_FIELD)},
             synopsis="Soft-delete versions of a secret.",
             description="The versions stop being readable; undelete/ brings them back."),
        Path(r"undelete/(?P<path>.*)", {"write": _undelete_versions}, {
            **_path_field(), "versions": Field(L, VERSIONS_FIELD)},
             synopsis="Restore soft-deleted versions of a secret.",
             description="Destroyed versions cannot be restored; asking for them changes nothing."),
        Path(r"destroy/(?P<path>.*)", {"write": _destroy_versions}, {
            **_path_field(), "versions": Field(L, VERSIONS_FIELD)},
             synopsis="Remove versions of a secret for good.",
             description="Their data is deleted from storage; the metadata keeps a destroyed mark."),
        Path(r"subkeys/(?P<path>.*)", {"read": _read_subkeys}, {
            **_path_field(),
            "version": Field(I, "The version to describe (default: the latest)."),
            "depth": Field(I, "How many levels of nested objects to follow (0: all).", default=0),
        }, synopsis="The keys of a version of a secret, without the values.",
           description="Every leaf value (including lists) is shown as null."),
        Path(r"(?P<path>.*)", {"read": _elsewhere, "write": _elsewhere, "delete": _elsewhere,
                               "list": _elsewhere, "patch": _elsewhere},
             {"path": Field(S, "Any other path: version 2 keeps secrets under data/ and metadata/.")},
             open_fields=True, synopsis="Not a version 2 path: use data/, metadata/ and the others."),
    ]
