"""No lock-out: the API never revokes its caller's own admin key or the last active one."""

from __future__ import annotations

import httpx
import pytest

from gateway.db import Database
from gateway.models import utcnow
from gateway.services import clients
from gateway.services.clients import AdminLockout, Role
from tests.api.conftest import assert_problem
from tests.conftest import KeyMaker, bearer


def _client_id(db: Database, key: str):  # type: ignore[no-untyped-def]
    principal = db.read(lambda session: clients.authenticate(session, key))
    assert principal is not None
    return principal.client_id


@pytest.mark.anyio
async def test_an_admin_cannot_revoke_its_own_key_but_can_revoke_another_admin(
    client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    first, second = make_key(Role.ADMIN), make_key(Role.ADMIN)

    own = await client.delete(f"/v1/clients/{_client_id(db, first)}", headers=bearer(first))
    other = await client.delete(f"/v1/clients/{_client_id(db, second)}", headers=bearer(first))
    still = await client.get("/v1/clients", headers=bearer(first))

    assert assert_problem(own, 409)["type"].endswith("/admin-lockout")
    assert other.status_code == 204
    assert still.status_code == 200


def test_the_last_active_admin_key_is_revoked_only_when_lock_out_is_allowed(
    make_key: KeyMaker, db: Database
) -> None:
    admin = _client_id(db, make_key(Role.ADMIN))
    operator = _client_id(db, make_key(Role.OPERATOR))

    with pytest.raises(AdminLockout):
        db.write(lambda session: clients.revoke(session, admin, now=utcnow(), revoked_by=operator))
    db.write(lambda session: clients.revoke(session, admin, now=utcnow(), allow_lockout=True))

    active_admins = [
        row
        for row in db.read(clients.list_clients)
        if row.role == Role.ADMIN and row.revoked_at is None
    ]
    assert active_admins == []
