"""``coffer server``, ``coffer status`` and ``coffer operator ...``."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import string
import sys

import click

from coffer.cli.common import Env, api_command, flag, prompt_secret
from coffer.cli.output import table


def _seal_rows(status: dict) -> list[tuple[str, object]]:
    recovery = "Recovery " if status.get("recovery_seal") else ""
    rows: list[tuple[str, object]] = [("Seal Type", status["type"])]
    if recovery:
        rows.append(("Recovery Seal Type", status.get("recovery_seal_type", "shamir")))
    rows += [("Initialized", status["initialized"]), ("Sealed", status["sealed"]),
             (f"Total {recovery}Shares", status["n"]), ("Threshold", status["t"])]
    if status.get("migration"):
        rows.append(("Seal Migration in Progress", True))
    if status["sealed"]:
        rows.append(("Unseal Progress", f"{status['progress']}/{status['t']}"))
    rows += [("Version", status["version"]), ("Storage Type", status["storage_type"]), ("HA Enabled", False)]
    return rows


def _show_status(env: Env, status: dict) -> None:
    if env.raw:
        env.show(status)
    else:
        click.echo(table(_seal_rows(status)))


@click.command()
@api_command
def status(env: Env) -> None:
    """Show whether the server is initialized and sealed (exit 2 when sealed).

    \b
    Example:
      coffer status
    """
    body = env.client.request("GET", "sys/seal-status").body
    _show_status(env, body)
    if body["sealed"]:
        sys.exit(2)


@click.group()
def operator() -> None:
    """Initialize, unseal, seal, rekey and rotate the server's keys; generate a root token.

    \b
    Examples:
      coffer operator init -key-shares=5 -key-threshold=3
      coffer operator unseal
      coffer operator seal
      coffer operator rekey -init -key-shares=3 -key-threshold=2
      coffer operator generate-root -generate-otp
      coffer operator snapshot save backup.snap
      coffer operator migrate -config=migrate.hcl
    """


@operator.command("init")
@flag("key-shares", type=int, default=None, help="How many unseal key shares to make (default 5; Shamir only).")
@flag("key-threshold", type=int, default=None, help="How many shares unseal the server (default 3; Shamir only).")
@flag("recovery-shares", type=int, default=None, help="Auto-unseal (awskms): how many recovery key shares to "
      "make (default 5).")
@flag("recovery-threshold", type=int, default=None, help="Auto-unseal: how many recovery key shares authorize "
      "generate-root and seal migration (default 3).")
@api_command
def init(env: Env, key_shares: int | None, key_threshold: int | None, recovery_shares: int | None,
         recovery_threshold: int | None) -> None:
    """Initialize a new server: print the unseal keys (recovery keys under auto-unseal) and the root token.

    \b
    Examples:
      coffer operator init -key-shares=5 -key-threshold=3
      coffer operator init -recovery-shares=5 -recovery-threshold=3
    """
    auto = env.client.request("GET", "sys/seal-status").body.get("type", "shamir") != "shamir"
    data: dict[str, int] = {}
    if not auto or key_shares is not None or key_threshold is not None:  # the server refuses what does not apply
        data["secret_shares"] = 5 if key_shares is None else key_shares
        data["secret_threshold"] = 3 if key_threshold is None else key_threshold
    if auto or recovery_shares is not None or recovery_threshold is not None:
        data["recovery_shares"] = 5 if recovery_shares is None else recovery_shares
        data["recovery_threshold"] = 3 if recovery_threshold is None else recovery_threshold
    body = env.client.write("sys/init", data)
    if env.raw:
        env.show(body)
        return
    if body.get("recovery_keys_base64"):
        for i, key in enumerate(body["recovery_keys_base64"], 1):
            click.echo(f"Recovery Key {i}: {key}")
        click.echo(f"\nInitial Root Token: {body['root_token']}\n")
        click.echo(f"The server is initialized with {data['recovery_shares']} recovery key shares and a recovery "
                   f"key threshold of {data['recovery_threshold']}.\nIt unseals itself with its seal (AWS KMS); "
                   "the recovery keys cannot unseal it, they authorize generate-root\nand seal migration. Keep "
                   "them apart and safe.")
        return
    for i, key in enumerate(body["keys_base64"], 1):
        click.echo(f"Unseal Key {i}: {key}")
    click.echo(f"\nInitial Root Token: {body['root_token']}\n")
    click.echo(f"The server is initialized with {data['secret_shares']} key shares and a key threshold of "
               f"{data['secret_threshold']}.\nGive {data['secret_threshold']} of these keys to `coffer operator "
               "unseal` each time it starts sealed.\n"
               "Keep them apart and safe: without them the data cannot be decrypted.")


@operator.command("unseal")
@click.argument("key", required=False)
@flag("reset", is_flag=True, help="Forget the key shares given so far.")
@flag("migrate", is_flag=True, help="Finish a pending seal migration: give the old seal's keys (unseal keys from "
      "Shamir, recovery keys from awskms).")
@api_command
def unseal(env: Env, key: str | None, reset: bool, migrate: bool) -> None:
    """Give one unseal key share (prompted without echo when omitted).

    \b
    Examples:
      coffer operator unseal
      coffer operator unseal 2d5a...
      coffer operator unseal -migrate 2d5a...
    """
    if reset:
        body = env.client.write("sys/unseal", {"reset": True})
    else:
        if not key:
            key = prompt_secret("Unseal Key")
        data: dict[str, object] = {"key": key.strip()}
        if migrate:
            data["migrate"] = True
        body = env.client.write("sys/unseal", data)
    _show_status(env, body)


@operator.command("seal")
@api_command
def seal(env: Env) -> None:
    """Seal the server (needs sudo).

    \b
    Example:
      coffer operator seal
    """
    env.client.write("sys/seal")
    click.echo("Success! coffer is sealed.")


@operator.command("key-status")
@api_command
def key_status(env: Env) -> None:
    """Show the active encryption key term.

    \b
    Example:
      coffer operator key-status
    """
    body = env.client.read("sys/key-status")
    if env.raw:
        env.show(body)
    else:
        data = body["data"]
        click.echo(table([("Key Term", data["term"]), ("Install Time", data["install_time"])]))


@operator.command("rotate")
@api_command
def rotate(env: Env) -> None:
    """Add a new encryption key term; new writes use it (needs sudo).

    \b
    Example:
      coffer operator rotate
    """
    env.client.write("sys/rotate")
    term = env.client.read("sys/key-status")["data"]["term"]
    click.echo(f"Success! Rotated key\n\nKey Term      {term}")


def _key_argument(key: str | None) -> str:
    return (key or prompt_secret("Unseal Key")).strip()


def _rekey_status_rows(status: dict) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [("Nonce", status.get("nonce", "")), ("Started", status.get("started")),
                                      ("Rekey Progress", f"{status.get('progress', 0)}/{status.get('required', 0)}"),
                                      ("New Shares", status.get("n")), ("New Threshold", status.get("t"))]
    if "verification_required" in status:
        rows.append(("Verification Required", status["verification_required"]))
    return rows


@operator.command("rekey")
@click.argument("key", required=False)
@flag("init", is_flag=True, help="Start a rekey (with -key-shares and -key-threshold).")
@flag("status", "show_status", is_flag=True, help="Show the rekey in progress.")
@flag("cancel", is_flag=True, help="Cancel the rekey in progress (or, with -verify, start its verification over).")
@flag("verify", is_flag=True, help="With -init: the new keys must be verified before they take effect; with a KEY: "
                                   "give one of the new keys to the verification.")
@flag("key-shares", type=int, default=5, show_default=True, help="How many new key shares to make.")
@flag("key-threshold", type=int, default=3, show_default=True, help="How many new shares will unseal the server.")
@flag("nonce", help="The nonce of the rekey (or of its verification); read from the status when omitted.")
@flag("backup-retrieve", is_flag=True, help="Show backed-up keys (coffer keeps none: they need PGP).")
@flag("backup-delete", is_flag=True, help="Delete backed-up keys.")
@api_command
def rekey(env: Env, key: str | None, init: bool, show_status: bool, cancel: bool, verify: bool, key_shares: int,
          key_threshold: int, nonce: str | None, backup_retrieve: bool, backup_delete: bool) -> None:
    """Make new unseal keys (a new root key): start with -init, then give the current keys one by one.

    Each current key is prompted without echo when KEY is omitted. The last one prints the new keys; the old
    ones stop working at once (or, with -init -verify, once enough new keys are given with -verify).

    \b
    Examples:
      coffer operator rekey -init -key-shares=3 -key-threshold=2
      coffer operator rekey            # once per current key (prompted)
      coffer operator rekey -status
      coffer operator rekey -verify    # once per new key, after -init -verify
      coffer operator rekey -cancel
    """
    area = "sys/rekey/verify" if verify and not init else "sys/rekey/init"
    if backup_retrieve or backup_delete:
        if backup_delete:
            env.client.delete("sys/rekey/backup")
            click.echo("Success! Delete backed-up keys (if they existed)")
        else:
            env.show(env.client.read("sys/rekey/backup"))
        return
    if cancel:
        if verify:
            env.client.delete("sys/rekey/verify")
            click.echo("Success! Canceled rekey verification; it starts over with a new nonce")
        else:
            env.client.delete("sys/rekey/init")
            click.echo("Success! Canceled rekeying (if it was started)")
        return
    if init:
        body = env.client.write("sys/rekey/init", {"secret_shares": key_shares, "secret_threshold": key_threshold,
                                                   "require_verification": verify})
        _show_rekey(env, body)
        return
    if show_status:
        _show_rekey(env, env.client.read(area))
        return
    if not nonce:
        nonce = env.client.read(area).get("nonce", "")
    body = env.client.write(area.replace("/init", "/update"), {"key": _key_argument(key), "nonce": nonce})
    if env.raw:
        env.show(body)
        return
    if not body.get("complete"):
        _show_rekey(env, body)
        return
    if verify:
        click.echo(f"Success! Rekey verification complete: the new keys are in force (nonce {body['nonce']})")
        return
    for i, new_key in enumerate(body["keys_base64"], 1):
        click.echo(f"Key {i}: {new_key}")
    click.echo(f"\nOperation nonce: {body['nonce']}\n")
    if body.get("verification_required"):
        threshold = env.client.read("sys/rekey/verify").get("t")
        click.echo(f"The new keys are not in force yet: give {threshold} of them to `coffer operator rekey -verify` "
                   f"(verification nonce {body.get('verification_nonce')}). Until then the old keys stay in force.")
        return
    shares = len(body["keys_base64"])
    status = env.client.read("sys/seal-status")
    click.echo(f"coffer rekeyed with {shares} key shares and a key threshold of {status['t']}. Distribute the key "
               "shares printed above; the old keys no longer work. Whenever the server is sealed or restarted, "
               f"give {status['t']} of these keys to `coffer operator unseal`.")


def _show_rekey(env: Env, body: dict) -> None:
    if env.raw:
        env.show(body)
    elif "verification_required" not in body and "t" in body and "required" not in body:
        click.echo(table([("Nonce", body.get("nonce")), ("Started", body.get("started")),
                          ("Verification Progress", f"{body.get('progress', 0)}/{body.get('t')}"),
                          ("New Shares", body.get("n")), ("New Threshold", body.get("t"))]))
    else:
        click.echo(table(_rekey_status_rows(body)))


_OTP_ALPHABET = string.ascii_letters + string.digits


def _generation_rows(body: dict) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [("Nonce", body.get("nonce", "")), ("Started", body.get("started")),
                                      ("Progress", f"{body.get('progress', 0)}/{body.get('required', 0)}"),
                                      ("Complete", body.get("complete"))]
    if body.get("otp"):
        rows.append(("OTP", body["otp"]))
    rows.append(("OTP Length", body.get("otp_length")))
    if body.get("encoded_token"):
        rows.append(("Encoded Token", body["encoded_token"]))
    return rows


@operator.command("generate-root")
@click.argument("key", required=False)
@flag("init", is_flag=True, help="Start a root generation (with -otp, else the server makes the OTP).")
@flag("status", "show_status", is_flag=True, help="Show the root generation in progress.")
@flag("cancel", is_flag=True, help="Cancel the root generation in progress.")
@flag("generate-otp", is_flag=True, help="Print a new one-time password of the length the server needs.")
@flag("otp", help="The one-time password (with -init, or with -decode).")
@flag("decode", help="Decode this encoded token with -otp and print the root token.")
@flag("nonce", help="The nonce of the root generation; read from the status when omitted.")
@api_command
def generate_root(env: Env, key: str | None, init: bool, show_status: bool, cancel: bool, generate_otp: bool,
                  otp: str | None, decode: str | None, nonce: str | None) -> None:
    """Make a new root token from the unseal keys: -init, then give the keys one by one, then -decode.

    \b
    Examples:
      coffer operator generate-root -generate-otp
      coffer operator generate-root -init -otp=<otp>
      coffer operator generate-root          # once per unseal key (prompted)
      coffer operator generate-root -decode=<encoded token> -otp=<otp>
    """
    if decode is not None:
        if not otp:
            raise click.UsageError("-decode needs the -otp the root generation was started with")
        click.echo(_decode(decode, otp))
        return
    if generate_otp:
        length = int(env.client.read("sys/generate-root/attempt").get("otp_length") or 28)
        click.echo("".join(secrets.choice(_OTP_ALPHABET) for _ in range(length)))
        return
    if cancel:
        env.client.delete("sys/generate-root/attempt")
        click.echo("Success! Root token generation canceled (if it was started)")
        return
    if init:
        body = env.client.write("sys/generate-root/attempt", {"otp": otp or ""})
        _show_generation(env, body)
        if body.get("otp") and not env.raw:
            click.echo("\nA one-time password was made for you (OTP above): keep it, it decodes the new root token.")
        return
    if show_status:
        _show_generation(env, env.client.read("sys/generate-root/attempt"))
        return
    if not nonce:
        nonce = env.client.read("sys/generate-root/attempt").get("nonce", "")
    body = env.client.write("sys/generate-root/update", {"key": _key_argument(key), "nonce": nonce})
    _show_generation(env, body)
    if body.get("complete") and not env.raw:
        click.echo("\nDecode the token with: coffer operator generate-root -decode=<Encoded Token> -otp=<OTP>")


def _show_generation(env: Env, body: dict) -> None:
    if env.raw:
        env.show(body)
    else:
        click.echo(table(_generation_rows(body)))


def _decode(encoded: str, otp: str) -> str:
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_" if "-" in encoded
                               or "_" in encoded else None)
    except ValueError:
        raise click.UsageError("-decode takes the Encoded Token the last key answered (base64)") from None
    if len(raw) != len(otp):
        raise click.UsageError(f"the encoded token has {len(raw)} bytes but the OTP {len(otp)} characters: is it "
                               "the OTP this root generation was started with?")
    try:
        return bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()
    except UnicodeDecodeError:
        raise click.UsageError("the OTP does not decode this token (wrong OTP?)") from None


@operator.command("step-down")
@api_command
def step_down(env: Env) -> None:
    """Make the active node give up the HA lock, so a standby takes over (needs sudo).

    \b
    Example:
      coffer operator step-down
    """
    env.client.write("sys/step-down")
    click.echo("Success! Stepped down: another node becomes the active one.")


@operator.command("members")
@api_command
def members(env: Env) -> None:
    """List the nodes of the HA cluster heard from in the last 30 seconds (sys/ha-status).

    \b
    Example:
      coffer operator members
    """
    body = env.client.read("sys/ha-status")
    if env.raw:
        env.show(body)
        return
    nodes = (body.get("data") or body).get("nodes") or []
    rows = [("Host Name", "API Address", "Cluster Address", "Active Node", "Version", "Last Echo")]
    rows += [(n["hostname"], n["api_address"], n["cluster_address"], str(n["active_node"]).lower(), n["version"],
              n["last_echo"]) for n in nodes]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("    ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@operator.group("snapshot")
def snapshot() -> None:
    """Save and restore a snapshot of the whole storage of a running server (online backups).

    \b
    Examples:
      coffer operator snapshot save backup.snap
      coffer operator snapshot restore backup.snap
      coffer operator snapshot restore -force other-cluster.snap
    """


@snapshot.command("save")
@click.argument("file", type=click.Path(dir_okay=False))
@api_command
def snapshot_save(env: Env, file: str) -> None:
    """Save a snapshot of the server's storage to FILE (created 0600; needs sudo).

    The server stays online; the snapshot is one consistent view of the storage. Its values are as
    storage holds them (encrypted): restoring it needs the unseal keys it was taken with.

    \b
    Example:
      coffer operator snapshot save backup.snap
    """
    target = os.path.abspath(file)
    partial = f"{target}.partial-{os.getpid()}"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise click.ClickException(f"cannot create {partial}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            size = env.client.download("sys/storage/raft/snapshot", out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    click.echo(f"Success! Snapshot saved to {file} ({size} bytes)")


@snapshot.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@flag("force", is_flag=True, help="Restore even when the snapshot was taken with other unseal keys (the server "
                                  "is then sealed: unseal it with the snapshot's keys).")
@api_command
def snapshot_restore(env: Env, file: str, force: bool) -> None:
    """Replace the server's whole storage with the snapshot in FILE (needs sudo).

    The file is checked whole first: a damaged one is refused and nothing changes. With the same unseal
    keys the server reloads and goes on serving the restored data; a snapshot with other keys needs
    -force and leaves the server sealed.

    \b
    Examples:
      coffer operator snapshot restore backup.snap
      coffer operator snapshot restore -force other-cluster.snap
    """
    path = "sys/storage/raft/snapshot-force" if force else "sys/storage/raft/snapshot"
    with open(file, "rb") as fh:
        env.client.upload("POST", path, fh, os.fstat(fh.fileno()).st_size)
    status = env.client.request("GET", "sys/seal-status").body
    if status.get("sealed"):
        click.echo("Success! Snapshot restored. The server is sealed: unseal it with the snapshot's unseal keys "
                   "(coffer operator unseal).")
    else:
        click.echo("Success! Snapshot restored; the server serves the restored data.")


@operator.command("migrate")
@flag("config", required=True, type=click.Path(dir_okay=False),
      help='The migration config: storage_source "<type>" { ... } and storage_destination "<type>" { ... }.')
@flag("start", default="", help="Copy only the keys from this one on (in key order): resumes a migration that "
                                "stopped, into a destination that already holds the keys before it.")
@flag("batch-size", type=click.IntRange(1, 100000), default=1000, show_default=True,
      help="Keys copied per transaction.")
@flag("reset", is_flag=True, help="Clear the migration lock a migration that died left in the source, then migrate.")
def migrate(config: str, start: str, batch_size: int, reset: bool) -> None:
    """Copy every key of one storage into another, offline (stop the servers first).

    \b
    Example migrate.hcl:
      storage_source "sqlite" { path = "/var/lib/coffer/coffer.db" }
      storage_destination "postgresql" { connection_url = "postgresql://coffer@db/coffer" }

    \b
    Examples:
      coffer operator migrate -config=migrate.hcl
      coffer operator migrate -config=migrate.hcl -start=sys/expire/
    """
    from coffer.migrate import MigrationError, run_migration  # offline: reaches storage, not a server

    try:
        run_migration(config, start=start, batch_size=batch_size, reset=reset)
    except MigrationError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
