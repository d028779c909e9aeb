"""``tenants.hotpath.BindPlan``: the positional arguments of a hot-path read, built straight
from the caller's parameters, are exactly what SQLAlchemy's ``construct_params`` and bind
processors give, for every statement the hot path reads, on both backends' dialects; what the
plan does not mirror goes through SQLAlchemy, with the same result."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite.pysqlite import dialect as sqlite_dialect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import create_async_engine

from broker import runtime
from broker.endpoints import health
from registry import trust
from tenants import api_keys, legacy_apps, revocation_cutoffs, token_state, users
from tenants.hotpath import BindPlan, HotPath
from tenants.keys import compromised

STATEMENTS = {
    "client lookup": runtime._LOOKUP,
    "managed connection": runtime._MANAGED,
    "resource by id": runtime._RESOURCE_BY_ID,
    "resource by name": runtime._RESOURCE_BY_NAME,
    "ping": health._PING,
    "user by id": users._BY_ID,
    "legacy app": legacy_apps._BY_ENTITY_ID,
    "subject refused": revocation_cutoffs._SUBJECT_REFUSED,
    "token state": token_state._TOKEN_STATE,
    "api key": api_keys._CHECK,
    "key compromised": compromised._IS_COMPROMISED,
    "live peer": trust.LIVE_PEER,
}
DIALECTS = {"sqlite": (sqlite_dialect(), True), "postgresql": (asyncpg_dialect(), False)}


def _value(bind: Any, salt: int) -> Any:
    try:
        kind = bind.type.python_type
    except NotImplementedError:
        kind = str
    if kind is bool:
        return salt % 2 == 0
    if kind is int:
        return 1000 + salt
    if kind is float:  # an int where a float goes: SQLite's processor converts it
        return 0.5 + salt if salt % 2 else 1000 + salt
    return f"v{salt}-{bind.key}"


def _parameters(query: Any, salt: int) -> dict[str, Any]:
    return {b.key: _value(b, salt + i) for i, b in enumerate(query.binds.values()) if b.required}


def _typed(values: list[Any]) -> list[tuple[type, Any]]:
    return [(type(v), v) for v in values]


def _sqlalchemys(query: Any, params: dict[str, Any], processors: bool) -> list[Any]:
    values = query.construct_params(params)
    result = []
    for name in query.positiontup:
        process = query._bind_processors.get(name) if processors else None
        result.append(process(values[name]) if callable(process) else values[name])
    return result


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("statement", STATEMENTS)
def test_the_plan_gives_what_sqlalchemy_gives(statement: str, dialect: str) -> None:
    engine_dialect, processors = DIALECTS[dialect]
    query = STATEMENTS[statement].compile(dialect=engine_dialect)
    plan = BindPlan(query, processors)
    assert plan.mirrored, "every hot-path read takes the plan"
    for salt in (0, 1, 7):
        params = _parameters(query, salt)
        assert _typed(plan.args(params)) == _typed(_sqlalchemys(query, params, processors))
        # a caller's None (an absent sub, issuer or kid) goes through as None
        nones = dict.fromkeys(params)
        assert _typed(plan.args(nones)) == _typed(_sqlalchemys(query, nones, processors))


@pytest.mark.parametrize("statement", ["token state", "client lookup", "live peer"])
def test_a_missing_parameter_is_refused_as_sqlalchemy_refuses_it(statement: str) -> None:
    query = STATEMENTS[statement].compile(dialect=sqlite_dialect())
    plan = BindPlan(query)
    assert plan.mirrored
    params = _parameters(query, 0)
    missing = dict(params)
    missing.pop(next(iter(params)))
    with pytest.raises(InvalidRequestError, match="A value is required for bind parameter"):
        query.construct_params(missing)
    with pytest.raises(InvalidRequestError, match="A value is required for bind parameter"):
        plan.args(missing)


_T = Table("things", MetaData(), Column("id", Integer, primary_key=True),
           Column("kind", String), Column("name", String))
_BY_KIND = select(_T.c.name).where(_T.c.kind == bindparam("kind"), _T.c.id > 1)
_COLLECTED = select(_T.c.name).where(_T.c.kind == bindparam("kind")).params(kind="b")
_CALLABLE = select(_T.c.name).where(_T.c.kind == bindparam("kind", callable_=lambda: "b"))


def test_what_the_plan_does_not_mirror_falls_back_to_sqlalchemy(tmp_path: Path) -> None:
    for statement in (_COLLECTED, _CALLABLE):
        query = statement.compile(dialect=sqlite_dialect())
        plan = BindPlan(query)
        assert not plan.mirrored
        assert _typed(plan.args({})) == _typed(_sqlalchemys(query, {}, True))

    async def scenario() -> list[Any]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/things.db")
        async with engine.begin() as conn:
            await conn.run_sync(_T.metadata.create_all)
            await conn.execute(_T.insert(), [{"id": 1, "kind": "a", "name": "first"},
                                             {"id": 2, "kind": "a", "name": "second"},
                                             {"id": 3, "kind": "b", "name": "third"}])
        hot = HotPath(engine)
        try:
            return [await hot.read_one(_BY_KIND, {"kind": "a"}),
                    await hot.read_one(_COLLECTED, {}),
                    await hot.read_one(_CALLABLE, {}),
                    await hot.read_one(_BY_KIND, {"kind": "c"})]
        finally:
            hot.close()
            await engine.dispose()

    by_kind, collected, computed, nothing = asyncio.run(scenario())
    assert by_kind.name == "second"  # the statement's own literal (id > 1) was bound
    assert collected.name == "third" and computed.name == "third"
    assert nothing is None
