"""The AWS secrets engine: IAM users and STS credentials on demand (leased), static roles whose key is
rotated on a schedule, root key rotation, an orphan finder, and paced AWS calls."""

from __future__ import annotations

import logging

from coffer.engines.aws import config, roles
from coffer.engines.aws.context import Aws
from coffer.engines.aws.iam_user import SECRET_TYPE, IamUsers
from coffer.engines.aws.orphans import Orphans
from coffer.engines.aws.roles import IAM_USER, load_role
from coffer.engines.aws.rotation import RootRotation, rotate_root
from coffer.engines.aws.runtime import interrupt_all
from coffer.engines.aws.static import StaticRoles
from coffer.engines.aws.sts import Sts
from coffer.errors import CofferError, InvalidRequest
from coffer.framework.backend import Backend, Path, SecretType, match_name
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import MountInfo, Request, Response

log = logging.getLogger("coffer.engines.aws")

HELP = """The AWS secrets engine makes AWS credentials on demand.

Give it root credentials (config/root) and define roles (roles/<name>). A read
of creds/<name> (or sts/<name>) answers, by the role's credential_type, a new
IAM user with its access key (iam_user: deleted when the lease ends) or STS
credentials (assumed_role, federation_token, session_token: they expire on
their own). Static roles (static-roles/<name>) rotate the one key of an
existing IAM user on a schedule; config/rotate-root rotates coffer's own key."""

__all__ = ["factory", "interrupt_all"]

CREDS_FIELDS = {
    "role_arn": Field(FieldType.STRING, "For assumed_role: which of the role's role_arns to assume (optional when it "
                                        "has one).",
                      default=""),
    "role_session_name": Field(FieldType.STRING, "For assumed_role: the name of the session (2-64 characters; by "
                                                 "default made from the username template).", default=""),
    "ttl": Field(FieldType.DURATION, "How long the credentials live (STS: default the role's default_sts_ttl, "
                                     "else 1h; iam_user: the lease).", default=0),
    "mfa_code": Field(FieldType.STRING, "The MFA code, for a role with mfa_serial_number.", default=""),
}


class AwsEngine:
    def __init__(self, mount: MountInfo) -> None:
        self.aws = Aws(mount.path)
        self.iam_users = IamUsers(self.aws)
        self.sts = Sts(self.aws)
        self.static = StaticRoles(self.aws)
        self.root_rotation = RootRotation(self.aws)
        self.orphans = Orphans(self.aws)

    async def issue(self, req: Request, d: FieldData) -> Response:
        name = d["name"]
        role = await load_role(req.storage, name)
        if role is None:
            raise InvalidRequest(f'Role "{name}" not found')
        kind = role.type_for("sts" if req.relative_path.startswith("sts/") else "creds")
        if kind != roles.ASSUMED_ROLE:
            for given in ("role_arn", "role_session_name"):
                if d[given] and not (given == "role_session_name" and kind == roles.FEDERATION_TOKEN):
                    raise InvalidRequest(f'{given} applies only to assumed_role roles; role "{name}" is {kind}')
        if kind == IAM_USER:
            if d["mfa_code"]:
                raise InvalidRequest(f'mfa_code applies only to roles with mfa_serial_number; role "{name}" is '
                                     "iam_user")
            return await self.iam_users.issue(req, d, name, role)
        return await self.sts.issue(req, d, name, role, kind)

    async def revoke(self, req: Request, internal: dict) -> dict[str, str] | None:
        if internal.get("is_sts"):
            await self.sts.revoke(req, internal)
            return None
        return await self.iam_users.revoke(req, internal)

    async def renew(self, req: Request, internal: dict) -> Response:
        if internal.get("is_sts"):
            raise InvalidRequest("STS credentials cannot be renewed: request new ones")
        return await self.iam_users.renew(req, internal)

    async def write_root(self, req: Request, d: FieldData) -> Response | None:
        resp = await config.write_root(req, d)
        await self.root_rotation.schedule_changed(req)
        return resp

    async def rotate_root(self, req: Request, d: FieldData) -> Response:
        return await rotate_root(self.root_rotation, req, d)

    async def periodic(self, req: Request) -> None:
        for what, job in (("root rotation", self.root_rotation.tick), ("static roles", self.static.tick),
                          ("abandoned issues", self.iam_users.tidy_abandoned)):
            try:
                await job(req)
            except CofferError as exc:
                log.warning("periodic %s of %s: %s", what, req.mount_point, exc)

    def backend(self) -> Backend:
        root = next(p for p in config.PATHS if p.pattern == "config/root")
        config_paths = [Path("config/root", {"read": config.get_root, "write": self.write_root},
                             dict(config.ROOT_FIELDS), synopsis=root.synopsis, description=root.description),
                        *[p for p in config.PATHS if p.pattern != "config/root"]]
        creds = [
            Path(rf"{kind}/{match_name()}", {"read": self.issue, "write": self.issue}, dict(CREDS_FIELDS),
                 synopsis="Credentials for a role (IAM user or STS, by its credential_type).",
                 description="GET with query parameters or POST with JSON. iam_user: a new IAM user and access "
                             "key, leased (revoking deletes the user). assumed_role, federation_token, "
                             "session_token: STS credentials whose lease ends when they expire (not renewable; "
                             "revoking only forgets them).")
            for kind in ("creds", "sts")
        ]
        rotate = Path("config/rotate-root", {"write": self.rotate_root},
                      synopsis="Rotate coffer's root access key now (answers the new access_key).")
        return Backend(
            [*config_paths, rotate, *roles.PATHS, *creds, *self.static.paths(), *self.orphans.paths()],
            help=HELP,
            secrets=[SecretType(SECRET_TYPE, revoke=self.revoke, renew=self.renew)],
            rollback=self.iam_users.rollback,
            periodic=self.periodic,
            sudo_paths=("tidy",),
        )


def factory(mount: MountInfo) -> Backend:
    return AwsEngine(mount).backend()
