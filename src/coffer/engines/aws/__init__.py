"""The AWS secrets engine: a fresh IAM user (and access key) per read of
``creds/<role>``, leased, and deleted when the lease ends."""

from __future__ import annotations

from coffer.engines.aws import config, roles
from coffer.engines.aws.iam_user import SECRET_TYPE, IamUsers
from coffer.framework.backend import Backend, Path, SecretType, match_name
from coffer.framework.request import MountInfo

HELP = """The AWS secrets engine makes AWS access keys on demand.

Give it root credentials (config/root), define roles as IAM policies
(roles/<name>), and every read of creds/<name> creates a new IAM user with
that policy and an access key, tied to a lease. When the lease is revoked or
expires, the user and everything attached to it is deleted."""


def factory(mount: MountInfo) -> Backend:
    users = IamUsers()
    creds = Path(
        rf"creds/{match_name()}",
        {"read": users.issue, "write": users.issue},
        synopsis="Make a new IAM user and access key for a role.",
        description="Each call creates a new IAM user with the role's policies and returns its access_key and "
                    "secret_key, leased; revoking the lease deletes the user.",
    )
    return Backend(
        [*config.PATHS, *roles.PATHS, creds],
        help=HELP,
        secrets=[SecretType(SECRET_TYPE, revoke=users.revoke, renew=users.renew)],
        rollback=users.rollback,
    )
