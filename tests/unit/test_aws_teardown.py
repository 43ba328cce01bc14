"""The teardown's memory of refused calls (engines/aws/context.Skips), against a stand-in IAM client: moto
deletes a user whatever still hangs off it, so it never answers DeleteConflict, which is what makes a
teardown that skipped refused calls try again with nothing skipped."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from coffer.engines.aws import context
from coffer.engines.aws.context import Skips
from coffer.engines.aws.failures import StepError
from coffer.engines.aws.iam_user import ATTACHMENTS, delete_user_sync


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeIam:
    """One user holding an access key (and an MFA device, with ``mfa``); ``denied`` names the SDK methods
    refused."""

    def __init__(self, denied: set[str], mfa: bool = False) -> None:
        self.denied = denied
        self.mfa = ["arn:aws:iam::1:mfa/u"] if mfa else []
        self.keys = ["AKIA1"]
        self.held = {"list_access_keys": self.keys, "list_mfa_devices": self.mfa}  # by listing
        self.exists = True
        self.calls: list[str] = []

    def can_paginate(self, name: str) -> bool:
        return False

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.denied:
            raise _error("AccessDenied", name)
        if not self.exists:
            raise _error("NoSuchEntity", name)

    def __getattr__(self, name: str) -> Any:
        kind = next((k for k in ATTACHMENTS if name in (k.listing, k.removal)), None)

        def call(**params: Any) -> dict[str, Any]:
            self._call(name)
            held = self.held.get(kind.listing, []) if kind is not None else []
            if kind is not None and name == kind.listing:
                return {kind.key: [{kind.id_param: i} for i in held]}
            if kind is not None:
                held.remove(params[kind.id_param])
            return {}
        return call

    def delete_user(self, UserName: str) -> None:  # noqa: N803 (the SDK's parameter name)
        self._call("delete_user")
        if self.mfa or self.keys:
            raise _error("DeleteConflict", "DeleteUser")
        self.exists = False


def test_refused_calls_are_skipped_until_the_memory_lapses(monkeypatch: pytest.MonkeyPatch) -> None:
    skips = Skips().use("AKIAROOT|")
    denied = {"list_ssh_public_keys", "delete_login_profile"}
    first = FakeIam(denied)
    delete_user_sync(first, "u", skips)
    assert denied <= set(first.calls) and not first.exists
    second = FakeIam(denied)
    delete_user_sync(second, "u", skips)
    assert not denied & set(second.calls) and not second.exists
    # Other root credentials, or the memory lapsed: tried again.
    for again in (lambda: skips.use("AKIAOTHER|"),
                  lambda: monkeypatch.setattr(context, "REFUSAL_MEMORY", -1.0)):
        again()
        iam = FakeIam(denied)
        delete_user_sync(iam, "u", skips)
        assert denied <= set(iam.calls)


def test_a_conflict_after_skipping_makes_the_whole_teardown_again() -> None:
    """The MFA listing was refused, then the operator granted it: the user with an MFA device first meets
    DeleteConflict (the listing was skipped), and the full pass removes the device and the user."""
    skips = Skips().use("AKIAROOT|")
    delete_user_sync(FakeIam({"list_mfa_devices"}), "u", skips)
    granted = FakeIam(set(), mfa=True)
    delete_user_sync(granted, "u", skips)
    assert not granted.exists and granted.mfa == [] and granted.keys == []
    assert granted.calls.count("delete_user") == 2 and granted.calls.count("list_mfa_devices") == 1


def test_still_refused_after_the_full_pass_names_what_is_missing() -> None:
    skips = Skips().use("AKIAROOT|")
    delete_user_sync(FakeIam({"list_mfa_devices"}), "u", skips)
    iam = FakeIam({"list_mfa_devices"}, mfa=True)
    with pytest.raises(StepError) as caught:
        delete_user_sync(iam, "u", skips)
    assert "MFA devices" in str(caught.value) and "iam:ListMFADevices" in str(caught.value)
    assert iam.calls.count("list_mfa_devices") == 1 and iam.calls.count("delete_user") == 2

