"""The admin key policy: which experiment actions need it, and the tritonserver flags it sets."""

from __future__ import annotations

import pytest

from pointsman.errors import Forbidden
from pointsman.policy.admin import ADMIN_HEADER, admin_headers, require_admin, triton_restriction_flags


@pytest.mark.parametrize("action", ["create", "pause", "resume", "stop"])
def test_a_state_changing_action_without_the_key_is_forbidden(action):
    with pytest.raises(Forbidden, match=f"action '{action}' changes experiments: send the admin key in the "
                                        f"'{ADMIN_HEADER}' header"):
        require_admin(action, None, "secret")


@pytest.mark.parametrize("action", ["create", "stop"])
def test_a_wrong_key_is_forbidden_and_the_right_one_allowed(action):
    with pytest.raises(Forbidden):
        require_admin(action, "guess", "secret")
    require_admin(action, "secret", "secret")


@pytest.mark.parametrize("action", ["list", "report", "feedback"])
def test_reading_and_feedback_need_no_key(action):
    require_admin(action, None, "secret")


def test_without_a_configured_key_nothing_is_restricted():
    require_admin("stop", None, None)
    assert admin_headers("") == {}


def test_flags_restrict_the_admin_apis_over_http_and_grpc_and_forward_the_header():
    flags = triton_restriction_flags("k")

    apis = "model-repository,model-config,logging,trace,shared-memory"
    assert f"--http-restricted-api={apis}:{ADMIN_HEADER}=k" in flags
    assert f"--grpc-restricted-protocol={apis}:{ADMIN_HEADER}=k" in flags
    assert f"--http-header-forward-pattern={ADMIN_HEADER}" in flags
    assert f"--grpc-header-forward-pattern={ADMIN_HEADER}" in flags


def test_the_servers_own_calls_carry_the_configured_key(monkeypatch):
    monkeypatch.setenv("POINTSMAN_ADMIN_KEY", "from-env")

    assert admin_headers() == {ADMIN_HEADER: "from-env"}
