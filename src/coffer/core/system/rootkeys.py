"""``sys/rekey/*`` and ``sys/generate-root/*``: new unseal keys, and a new root token, from the current keys.

As in Vault, these are served without a token (whoever holds enough unseal keys is trusted), answer plain
JSON, and keep their progress in memory (``core.seal.Rekey``, ``RootGeneration``). ``sys/rekey/backup``
needs sudo and answers as Vault does when no backup exists (coffer makes none: it has no PGP support).
"""

from __future__ import annotations

from typing import Protocol

from coffer.core.seal import decode_key
from coffer.errors import InvalidRequest
from coffer.framework.backend import Handler, Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

S, I, B, L = FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.COMMA_LIST

UNAUTHENTICATED = ("rekey/init", "rekey/update", "rekey/verify", "rekey-recovery-key/init", "rekey-recovery-key/update",
                   "rekey-recovery-key/verify", "generate-root/attempt", "generate-root/update")
SUDO = ("rekey/backup", "rekey/recovery-key-backup", "rotate/root/*", "generate-root-token/*")
#: OpenBao's authenticated spellings of the same ceremonies (its bao CLI uses them): a token with sudo, an envelope.
AUTHENTICATED_ALIASES = {"rekey/": "rotate/root/", "generate-root/": "generate-root-token/"}


class KeyCeremonies(Protocol):
    """What these paths need of the server (``core.Core`` is one)."""

    def rekey_status(self) -> dict[str, object]: ...

    def rekey_init(self, shares: int, threshold: int, require_verification: bool = False,
                   recovery: bool = False) -> dict[str, object]: ...

    def rekey_cancel(self) -> None: ...

    async def rekey_update(self, key: bytes, given_nonce: str | None) -> dict[str, object]: ...

    def rekey_verify_status(self) -> dict[str, object]: ...

    def rekey_verify_cancel(self) -> dict[str, object]: ...

    async def rekey_verify_update(self, key: bytes, given_nonce: str | None) -> dict[str, object]: ...

    def generate_root_status(self) -> dict[str, object]: ...

    def generate_root_init(self, otp: str = "") -> dict[str, object]: ...

    def generate_root_cancel(self) -> None: ...

    async def generate_root_update(self, key: bytes, given_nonce: str | None) -> dict[str, object]: ...


def raw(data: dict[str, object]) -> Response:
    return Response(data=data, raw=True)


def _key(d: FieldData) -> bytes:
    if not d["key"]:
        raise InvalidRequest("'key' must be specified in request body as JSON")
    return decode_key(d["key"])


def _no_pgp(d: FieldData, *names: str) -> None:
    if any(d[n] for n in names):
        raise InvalidRequest(f"{' and '.join(names)} are not supported (coffer has no PGP support); leave them out "
                             "to receive the keys in plaintext")


def paths(server: KeyCeremonies) -> list[Path]:
    async def rekey_status(req: Request, d: FieldData) -> Response:
        return raw(server.rekey_status())

    async def rekey_init(req: Request, d: FieldData) -> Response:
        _no_pgp(d, "pgp_keys", "backup")
        d.require("secret_shares", "secret_threshold")
        return raw(server.rekey_init(d["secret_shares"], d["secret_threshold"], d["require_verification"]))

    async def recovery_rekey_init(req: Request, d: FieldData) -> Response:
        _no_pgp(d, "pgp_keys", "backup")
        d.require("secret_shares", "secret_threshold")
        return raw(server.rekey_init(d["secret_shares"], d["secret_threshold"], d["require_verification"],
                                     recovery=True))

    async def rekey_cancel(req: Request, d: FieldData) -> None:
        server.rekey_cancel()

    async def rekey_update(req: Request, d: FieldData) -> Response:
        return raw(await server.rekey_update(_key(d), d["nonce"]))

    async def verify_status(req: Request, d: FieldData) -> Response:
        return raw(server.rekey_verify_status())

    async def verify_update(req: Request, d: FieldData) -> Response:
        return raw(await server.rekey_verify_update(_key(d), d["nonce"]))

    async def verify_cancel(req: Request, d: FieldData) -> Response:
        return raw(server.rekey_verify_cancel())

    async def backup(req: Request, d: FieldData) -> None:
        raise InvalidRequest("no backed-up keys found")

    async def delete_backup(req: Request, d: FieldData) -> None:
        return None

    async def root_status(req: Request, d: FieldData) -> Response:
        return raw(server.generate_root_status())

    async def root_init(req: Request, d: FieldData) -> Response:
        _no_pgp(d, "pgp_key")
        return raw(server.generate_root_init(d["otp"] or ""))

    async def root_cancel(req: Request, d: FieldData) -> None:
        server.generate_root_cancel()

    async def root_update(req: Request, d: FieldData) -> Response:
        return raw(await server.generate_root_update(_key(d), d["nonce"]))

    def enveloped(handler: Handler) -> Handler:
        async def answer(req: Request, d: FieldData) -> Response | None:
            resp = await handler(req, d)
            if resp is not None:
                resp.raw = False
            return resp

        return answer

    def aliases(paths: list[Path]) -> list[Path]:
        out = []
        for path in paths:
            for old, new in AUTHENTICATED_ALIASES.items():
                if path.pattern.startswith(old):
                    out.append(Path(new + path.pattern[len(old):],
                                    {op: enveloped(h) for op, h in path.operations.items()}, path.fields,
                                    synopsis=path.synopsis, description=path.description))
        return out

    key_fields = {
        "key": Field(S, "One unseal key share, hex or base64, as operator init (or the last rekey) printed it."),
        "nonce": Field(S, "The nonce of the operation in progress, as its status shows it."),
    }
    legacy = [
        Path("rekey/init", {"read": rekey_status, "write": rekey_init, "delete": rekey_cancel}, {
            "secret_shares": Field(I, "How many unseal key shares the new root key is split into."),
            "secret_threshold": Field(I, "How many of the new shares will be needed to unseal."),
            "require_verification": Field(B, "When true, the new keys take effect only once enough of them are "
                                             "given to sys/rekey/verify.", default=False),
            "pgp_keys": Field(L, "Not supported (coffer has no PGP support); must be empty."),
            "backup": Field(B, "Not supported (it needs pgp_keys); must be false.", default=False),
        }, synopsis="Start (PUT), show (GET) or cancel (DELETE) a rekey: new unseal keys for a new root key.",
           description="Then give the current unseal keys to sys/rekey/update; the last one answers the new "
                       "keys. Data stays readable: only the keyring is encrypted anew."),
        Path("rekey/update", {"write": rekey_update}, dict(key_fields),
             synopsis="Give one current unseal key to the rekey in progress.",
             description="Once the current threshold is reached, the answer holds the new keys (keys, "
                         "keys_base64); the old keys stop working unless verification was asked for."),
        Path("rekey/verify", {"read": verify_status, "write": verify_update, "delete": verify_cancel},
             dict(key_fields), synopsis="Prove the new keys of a rekey work before they take effect.",
             description="Give the new unseal keys (with the verification nonce); once the new threshold is "
                         "reached, the new keys replace the old ones. DELETE starts the verification over."),
        Path("rekey/backup", {"read": backup, "delete": delete_backup},
             synopsis="Backed-up rekey keys (coffer keeps none: they need PGP).",
             description="GET answers 400 \"no backed-up keys found\"; DELETE does nothing."),
        Path("generate-root/attempt", {"read": root_status, "write": root_init, "delete": root_cancel}, {
            "otp": Field(S, "A one-time password of otp_length characters that the new token is XORed with "
                            "(coffer operator generate-root -generate-otp makes one); empty: the server makes "
                            "one and answers it this once."),
            "pgp_key": Field(S, "Not supported (coffer has no PGP support); must be empty."),
        }, synopsis="Start (PUT), show (GET) or cancel (DELETE) the generation of a new root token.",
           description="Then give the unseal keys to sys/generate-root/update; the last one answers "
                       "encoded_token, which coffer operator generate-root -decode turns into the token with "
                       "the OTP."),
        Path("generate-root/update", {"write": root_update}, dict(key_fields),
             synopsis="Give one unseal key to the root generation in progress.",
             description="Once the threshold is reached, the answer's encoded_token is the new root token "
                         "XORed with the OTP (base64)."),
    ]
    # The recovery keys of an auto-unseal seal are rekeyed the same way, at their own paths (as in Vault).
    recovery = [
        Path("rekey-recovery-key/init", {"read": rekey_status, "write": recovery_rekey_init,
                                         "delete": rekey_cancel}, legacy[0].fields,
             synopsis="Start (PUT), show (GET) or cancel (DELETE) a rekey of the recovery keys (auto-unseal).",
             description="Then give the current recovery keys to sys/rekey-recovery-key/update; the last one "
                         "answers the new recovery keys."),
        Path("rekey-recovery-key/update", {"write": rekey_update}, dict(key_fields),
             synopsis="Give one current recovery key to the recovery key rekey in progress."),
        Path("rekey-recovery-key/verify", {"read": verify_status, "write": verify_update, "delete": verify_cancel},
             dict(key_fields), synopsis="Prove the new recovery keys work before they take effect."),
    ]
    return legacy + aliases(legacy) + recovery
