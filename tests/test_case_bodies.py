"""Case reads kept rendered in the database (store.case_bodies, api.case_bodies): every change queues its case,
the refresher renders the queue in the owners' languages, reads answer with a body only while it is of the case's
current version and the running renderer, on both databases."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import Engine, select, text, update
from sqlmodel import Session

from api.case_bodies import CaseBodyRefresher, rendered_of, renderer_id
from api.case_views import CaseViews
from api.main import create_app
from bench.bench_api import Dataset, generate, load
from recovery.models import CaseStatus, CaseUpdate, TimelineEvent
from recovery.settings import Settings
from store import case_bodies, cases, users
from store.case_bodies import CaseBody, CaseBodyQueue, Queued, StoredBody
from store.case_views import case_view
from store.users import User
from tests.api_fixtures import TX

LOCALES = ("en", "de", "ja", "ar", "zh-Hant", "tr")


def _loaded(engine: Engine, count: int = 60, users: int = 6) -> Dataset:
    """The API bench's cases (every kind the engine leaves), their users in several languages."""
    data = Dataset()
    load(engine, generate(count, users, 7, data), lambda _: None)
    with engine.begin() as connection:
        user_ids = connection.execute(select(User.user_id).order_by(User.user_id)).scalars().all()  # type: ignore[call-overload]
        for n, user_id in enumerate(user_ids):
            connection.execute(update(User).where(User.user_id == user_id).values(locale=LOCALES[n % len(LOCALES)]))  # type: ignore[arg-type]
    return data


def _drain(refresher: CaseBodyRefresher) -> int:
    taken = 0
    while n := refresher.refresh_once():
        taken += n
    return taken


def _queued(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {item.case_id: item.view_version for item in case_bodies.queued(connection, limit=10_000)}


def _bodies(engine: Engine) -> dict[str, CaseBody]:
    with Session(engine) as session:
        return {body.case_id: body for body in session.exec(select(CaseBody)).scalars()}  # type: ignore[call-overload]


def _owner_of(engine: Engine, case_id: str) -> str:
    with engine.connect() as connection:
        return connection.execute(text("SELECT user_id FROM cases WHERE case_id = :id"), {"id": case_id}).scalar_one()


def _owner_locale(engine: Engine, case_id: str) -> str:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT u.locale FROM cases c JOIN users u ON u.user_id = c.user_id WHERE c.case_id = :id"),
            {"id": case_id},
        ).scalar_one()


def test_every_loaded_case_is_queued_and_the_refresher_renders_each_in_its_owners_language(db_engine: Engine) -> None:
    data = _loaded(db_engine)
    queued = _queued(db_engine)
    assert set(queued) == set(data.case_ids)
    refresher = CaseBodyRefresher(db_engine, batch=25)
    assert _drain(refresher) == len(data.case_ids)
    assert _queued(db_engine) == {}
    stored = _bodies(db_engine)
    assert set(stored) == set(data.case_ids)
    languages = set()
    for case_id, body in stored.items():
        with db_engine.connect() as connection:
            view = case_view(connection, case_id=case_id)
        assert view is not None
        locale = _owner_locale(db_engine, case_id)
        languages.add(locale)
        expected = rendered_of(view, locale)
        assert (body.locale, body.view_version, body.renderer) == (locale, view.case.view_version, renderer_id())
        assert (bytes(body.body), body.etag) == (expected.body, expected.etag)
    assert languages == set(LOCALES)
    assert refresher.refresh_once() == 0  # nothing queued, nothing stale


async def test_a_read_answers_with_the_kept_body_only_while_it_is_current(db_engine: Engine) -> None:
    data = _loaded(db_engine, count=12, users=2)
    _drain(CaseBodyRefresher(db_engine))
    case_id, token = data.case_ids[0], data.tokens[data.owners[0]]
    locale = _owner_locale(db_engine, case_id)
    marker = b'{"kept":"this body was read from case_bodies"}'
    with db_engine.begin() as connection:  # the same version: a read that answers with it shows it was read
        connection.execute(update(CaseBody).where(CaseBody.case_id == case_id).values(body=marker, etag='"kept"'))  # type: ignore[arg-type]

    async def read(locale_asked: str | None = None) -> bytes:
        views = CaseViews(db_engine)  # nothing kept in memory: each read goes to the database
        try:
            found, rendered = await views.read(token=token, case_id=case_id, locale=locale_asked)
        finally:
            await views.close()
        assert found is not None and rendered is not None
        return rendered.body

    assert await read() == marker  # the user's own language: the kept body
    assert await read(locale) == marker  # asked for by Accept-Language: the same
    other = "de" if locale != "de" else "ja"
    assert await read(other) != marker  # another language: rendered on the read

    with Session(db_engine) as session:  # the case changes: its body is behind until the refresher runs
        cases.apply_case_update(
            session,
            update=CaseUpdate(
                case_id=case_id,
                event=TimelineEvent(key="later", status=CaseStatus.AWAITING_APPROVAL, message="an engineer decides"),
            ),
        )
    fresh = await read()
    assert fresh != marker and b"an engineer decides" in fresh
    assert case_id in _queued(db_engine)
    _drain(CaseBodyRefresher(db_engine))
    assert bytes(_bodies(db_engine)[case_id].body) == fresh and await read() == fresh


async def test_a_body_of_another_renderer_is_never_served_and_is_rendered_again(db_engine: Engine) -> None:
    data = _loaded(db_engine, count=8, users=2)
    _drain(CaseBodyRefresher(db_engine))
    case_id, token = data.case_ids[1], data.tokens[data.owners[1]]
    right = bytes(_bodies(db_engine)[case_id].body)
    with db_engine.begin() as connection:  # as a deploy before this one left it
        connection.execute(
            update(CaseBody).where(CaseBody.case_id == case_id).values(renderer="an earlier deploy", body=b"{}")  # type: ignore[arg-type]
        )
    views = CaseViews(db_engine)
    try:
        _, rendered = await views.read(token=token, case_id=case_id)
    finally:
        await views.close()
    assert rendered is not None and rendered.body == right
    assert CaseBodyRefresher(db_engine).refresh_once() == 1  # nothing queued: the stale body is taken
    body = _bodies(db_engine)[case_id]
    assert (body.renderer, bytes(body.body)) == (renderer_id(), right)


def test_a_users_new_language_queues_their_cases_and_their_bodies_follow(db_engine: Engine) -> None:
    data = _loaded(db_engine, count=10, users=2)
    _drain(CaseBodyRefresher(db_engine))
    owner = data.owners[0]
    theirs = {case_id for case_id, n in zip(data.case_ids, data.owners, strict=True) if n == owner}
    user_id = _owner_of(db_engine, data.case_ids[0])
    new = "ko" if _owner_locale(db_engine, data.case_ids[0]) != "ko" else "vi"
    with Session(db_engine) as session:
        users.set_locale(session, user_id=user_id, locale=new)
    assert set(_queued(db_engine)) == theirs
    _drain(CaseBodyRefresher(db_engine))
    in_theirs = CaseBody.case_id.in_(theirs)  # type: ignore[attr-defined]
    with db_engine.connect() as connection:  # one body a case, in the new language: the old ones are gone
        locales = connection.execute(select(CaseBody.locale).where(in_theirs)).scalars().all()  # type: ignore[call-overload]
    assert locales == [new] * len(theirs)


def test_saving_never_goes_back_a_version_nor_takes_a_case_queued_again_off_the_queue(db_engine: Engine) -> None:
    with Session(db_engine) as session:
        cases.create_case(session, case_id="case-q", user_id="alice", chain="bsc", tx_hash=TX, log_index=0)
        session.commit()
    version = _queued(db_engine)["case-q"]

    def body(v: int, content: bytes) -> StoredBody:
        return StoredBody("case-q", "en", v, renderer_id(), content, '"e"')

    with db_engine.begin() as connection:  # rendered at a version a change has moved on from since
        case_bodies.save(connection, [body(version + 5, b"newer")], done=[])
        case_bodies.save(connection, [body(version, b"older")], done=[Queued("case-q", version - 1)])
    assert bytes(_bodies(db_engine)["case-q"].body) == b"newer"
    assert _queued(db_engine) == {"case-q": version}  # still to render
    with db_engine.begin() as connection:
        case_bodies.save(connection, [], done=[Queued("case-q", version)])
    assert _queued(db_engine) == {}


def test_a_deleted_case_takes_its_body_and_queue_row_with_it(db_engine: Engine) -> None:
    """So a case id claimed again (a claim whose workflow could not start) never meets the old case's body."""
    with Session(db_engine) as session:
        cases.create_case(session, case_id="case-d", user_id="alice", chain="bsc", tx_hash=TX, log_index=0)
        session.commit()
    _drain(CaseBodyRefresher(db_engine))
    assert "case-d" in _bodies(db_engine)
    with Session(db_engine) as session:
        cases.apply_case_update(
            session,
            update=CaseUpdate(
                case_id="case-d", event=TimelineEvent(key="k", status=CaseStatus.RECEIVED, message="again")
            ),
        )
        assert cases.delete_case(session, case_id="case-d")
    assert "case-d" not in _bodies(db_engine) and _queued(db_engine) == {}
    with Session(db_engine) as session:
        assert session.exec(select(CaseBodyQueue)).all() == []  # type: ignore[call-overload]


async def test_the_api_process_renders_a_new_case_by_itself(tmp_path: Path) -> None:
    """The refresher runs in the API's lifespan: a case written by another process gets its body within moments."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(Settings(data_dir=tmp_path, database_url=url))
    async with app.router.lifespan_context(app):
        engine: Engine = app.state.engine
        with Session(engine) as session:
            cases.create_case(session, case_id="case-new", user_id="alice", chain="bsc", tx_hash=TX, log_index=0)
            session.commit()
        deadline = time.monotonic() + 20
        while "case-new" not in _bodies(engine) or _queued(engine):
            assert time.monotonic() < deadline, "the API's refresher did not render the new case"
            await asyncio.sleep(0.1)
