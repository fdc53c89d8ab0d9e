"""The lane for hot statements (``bot.db.hot``) on psycopg and sqlite3: same rows as SQLAlchemy,
actually taken on the answer loop, and driver errors that still roll back and retry as before."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, create_engine, event, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col

from bot.db import Database, hot
from bot.db.engine import connection
from bot.tasks import leasing, quality, service
from bot.tasks.models import Assignment
from bot.tasks.service import AnswerOutcome, Submitted, TaskCard
from bot.wallet.accounts import LABELING_EXPENSE, worker_account
from bot.work import answers
from tests.domain.helpers import make_project, make_workers


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def lane_db(request: pytest.FixtureRequest) -> Database:
    """The same test on both drivers the lane serves."""
    return request.getfixturevalue("db" if request.param == "sqlite" else "pg_db")  # type: ignore[no-any-return]


def _answer(db: Database, worker_id: int, card: TaskCard) -> AnswerOutcome:
    return db.call(answers.act_and_next, worker_id, card.assignment_id, "label", "0", chat_id=1, message_id=7)


def _statements(db: Database) -> list[str]:
    seen: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda _c, _cur, sql, *_a: seen.append(sql))
    return seen


def test_answer_loop_runs_on_the_lane_with_the_same_rows(lane_db: Database, tmp_path: Path) -> None:
    pg_db = lane_db
    make_project(pg_db, tmp_path / "imgs", count=12, overlap=1)
    (w,) = make_workers(pg_db, 1)
    card = pg_db.call(service.next_task, w)
    for _ in range(3):  # first runs go through SQLAlchemy and plan the lane
        assert isinstance(card, TaskCard)
        outcome = _answer(pg_db, w, card)
        assert isinstance(outcome.result, Submitted)
        card = outcome.next  # type: ignore[assignment]
    assert isinstance(card, TaskCard)
    through_sqlalchemy = _statements(pg_db)
    outcome = _answer(pg_db, w, card)
    assert isinstance(outcome.result, Submitted) and isinstance(outcome.next, TaskCard)
    assert through_sqlalchemy == [], f"hot statements left the lane: {through_sqlalchemy}"

    # The lane's rows equal SQLAlchemy's, types included (SQLModel's UTC datetimes, mappings).
    def both(session: Session, statement: Any, params: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
        if not pg_db.sqlite:
            connection(session).execute(text("SET LOCAL TIME ZONE 'Asia/Seoul'"))  # psycopg answers in +09:00
        lane = hot.execute(session, statement, params)
        orm = connection(session).execute(statement, params)
        lane_map = hot.execute(session, statement, params).mappings().all()
        orm_map = [dict(m) for m in connection(session).execute(statement, params).mappings().all()]
        return list(lane.all()), [tuple(r) for r in orm.all()], lane_map, orm_map

    lane_rows, orm_rows, lane_map, orm_map = pg_db.call(both, service._LEASE, {"assignment_id": card.assignment_id})
    assert lane_rows == orm_rows and len(lane_rows) == 1
    assert lane_map == orm_map
    leased_at = lane_map[0]["leased_at"]
    assert leased_at.tzinfo is not None and leased_at.utcoffset() == UTC.utcoffset(None)
    lane_rows, orm_rows, lane_map, orm_map = pg_db.call(both, quality._FIND_WP, {"worker_id": w, "project_id": card.project_id})
    assert lane_rows == orm_rows and lane_map == orm_map and lane_map[0]["answers_total"] == 4


def test_integrity_error_from_the_lane_rolls_back_everything(lane_db: Database, tmp_path: Path) -> None:
    pg_db = lane_db
    make_project(pg_db, tmp_path / "imgs", count=3, overlap=2)
    (w,) = make_workers(pg_db, 1)
    card = pg_db.call(service.next_task, w)
    assert isinstance(card, TaskCard)
    leased_at = pg_db.call(lambda s: s.get(Assignment, card.assignment_id).leased_at)  # type: ignore[union-attr]
    lease = {
        "task_id": card.task_id,
        "worker_id": w,
        "project_id": card.project_id,
        "status": "leased",
        "leased_at": leased_at,
        "expires_at": leased_at,
        "chat_id": None,
        "message_id": None,
    }
    for _ in range(2):  # plan the INSERT (the first run is SQLAlchemy's), then hit the lane

        def twice(session: Session) -> None:
            hot.execute(session, answers._INSERT_ANSWER, _answer_row(card, w))
            hot.execute(session, leasing._INSERT_LEASE, lease)  # the same task to the same worker again

        with pytest.raises(IntegrityError):
            pg_db.call(twice)
    with pg_db.session() as s:  # the answer inserted before the failure went with it
        assert s.execute(text("SELECT count(*) FROM answer")).scalar_one() == 0
        assert s.execute(text("SELECT count(*) FROM assignment")).scalar_one() == 1
    assert isinstance(_answer(pg_db, w, card).result, Submitted)  # the connection works on


@pytest.mark.postgres
def test_lost_connection_on_the_lane_is_run_again(pg_db: Database, tmp_path: Path) -> None:
    make_project(pg_db, tmp_path / "imgs", count=2)
    (w,) = make_workers(pg_db, 1)
    for _ in range(2):  # plan the statement
        pg_db.call(lambda s: hot.execute(s, service._WORKER_STATUS, {"worker_id": w}).first())
    killer = create_engine(pg_db.url, isolation_level="AUTOCOMMIT")
    attempts: list[type[BaseException] | None] = []

    def status(session: Session) -> Any:
        if not attempts:
            pid = connection(session).execute(text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        try:
            row = hot.execute(session, service._WORKER_STATUS, {"worker_id": w}).first()
        except DBAPIError as exc:
            attempts.append(type(exc))
            assert exc.connection_invalidated
            raise
        attempts.append(None)
        return row

    assert pg_db.call(status) == ("active", None)
    assert len(attempts) == 2 and attempts[0] is not None and issubclass(attempts[0], DBAPIError) and attempts[1] is None
    killer.dispose()


def _answer_row(card: TaskCard, worker_id: int) -> dict[str, Any]:
    from bot.clock import utcnow

    return {
        "assignment_id": card.assignment_id,
        "task_id": card.task_id,
        "worker_id": worker_id,
        "project_id": card.project_id,
        "reward": 0,
        "value": "a",
        "mask_rle": None,
        "seconds": 1.0,
        "is_golden": False,
        "correct": None,
        "status": "accepted",
        "created_at": utcnow(),
    }


@pytest.mark.postgres
def test_db_echo_keeps_every_statement_on_sqlalchemy(pg_url: str, tmp_path: Path) -> None:
    """An operator who sets DB_ECHO sees every statement of a tap in the log."""
    echo_db = Database(pg_url, echo=True)
    try:
        make_project(echo_db, tmp_path / "imgs", count=6, overlap=1)
        (w,) = make_workers(echo_db, 1)
        card = echo_db.call(service.next_task, w)
        for _ in range(3):
            assert isinstance(card, TaskCard)
            card = _answer(echo_db, w, card).next  # type: ignore[assignment]
        assert isinstance(card, TaskCard)
        seen = _statements(echo_db)
        assert isinstance(_answer(echo_db, w, card).result, Submitted)
        assert any("INSERT INTO answer" in sql for sql in seen)  # on PostgreSQL inside "WITH closed AS (UPDATE assignment ...)"
        assert any("UPDATE task SET taken" in sql for sql in seen)  # on PostgreSQL inside "WITH picked AS (...)"
    finally:
        echo_db.dispose()


def _dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a tap writes, without the clock's columns."""
    queries = {
        "answer": "SELECT assignment_id, task_id, worker_id, value, reward, status, is_golden FROM answer ORDER BY id",
        "assignment": "SELECT task_id, worker_id, status, chat_id, message_id FROM assignment ORDER BY id",
        "task": "SELECT id, taken, answers_count, status FROM task ORDER BY id",
        "ledger": "SELECT account, amount FROM ledgerentry ORDER BY id",
        "worker_project": "SELECT worker_id, project_id, answers_total, golden_total FROM workerproject ORDER BY worker_id",
    }
    with db.session() as s:
        return {name: [tuple(r) for r in s.execute(text(sql)).all()] for name, sql in queries.items()}


def test_sqlite_lane_writes_what_sqlalchemy_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same taps on sqlite3 with and without the lane leave the same rows: the lane sends
    SQLAlchemy's own compiled SQL with its qmark parameters in order."""
    from bot.db.migrate import upgrade

    def run(name: str) -> dict[str, list[tuple[Any, ...]]]:
        url = f"sqlite:///{tmp_path / name}.db"
        upgrade(url)
        database = Database(url)
        try:
            make_project(database, tmp_path / "imgs", count=8, overlap=2, price=30)
            workers_ = make_workers(database, 2)
            for w in workers_:
                card = database.call(service.next_task, w)
                for _ in range(5):
                    assert isinstance(card, TaskCard)
                    card = _answer(database, w, card).next  # type: ignore[assignment]
            return _dump(database)
        finally:
            database.dispose()

    with_lane = run("lane")
    monkeypatch.setattr(hot, "_LANE_DRIVERS", frozenset({"psycopg"}))
    without = run("plain")
    assert with_lane == without
    assert len(with_lane["answer"]) == 10 and sum(r[1] for r in with_lane["ledger"] if r[0].startswith("worker")) > 0


# --- writes that ride on a later statement (PostgreSQL) ----------------------------------------
@pytest.mark.postgres
def test_a_paid_answer_is_four_statements_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """The lease read; the lease closed, the answer recorded and what settling reads; the
    counters UPDATE carrying the task's settlement and the payment; the next claim."""
    echo_db = Database(pg_url, echo=True)
    try:
        make_project(echo_db, tmp_path / "imgs", count=6, overlap=1, price=30)
        (w,) = make_workers(echo_db, 1)
        card = echo_db.call(service.next_task, w)
        assert isinstance(card, TaskCard)
        seen = _statements(echo_db)
        outcome = _answer(echo_db, w, card)
        assert isinstance(outcome.result, Submitted) and outcome.result.reward == 30 and outcome.result.task_done
        tap = [sql for sql in seen if sql.split()[0] not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")]
        assert len(tap) == 4, tap
        recording = [sql for sql in tap if "INSERT INTO answer" in sql]
        assert len(recording) == 1 and "FROM answer LEFT OUTER JOIN workerproject" in recording[0]
        riding = [sql for sql in tap if "UPDATE workerproject" in sql]
        assert len(riding) == 1 and "INSERT INTO ledgertxn" in riding[0] and "INSERT INTO ledgerentry" in riding[0]
        assert "UPDATE task SET status" in riding[0]
        with echo_db.session() as s:
            task = s.execute(text("SELECT status, answers_count, result FROM task WHERE id = :id"), {"id": card.task_id}).one()
            assert tuple(task) == ("done", 1, "a")
            legs = s.execute(
                text("SELECT e.account, e.amount FROM ledgerentry e JOIN ledgertxn t ON t.id = e.txn_id ORDER BY e.amount")
            ).all()
            assert [tuple(r) for r in legs] == [(LABELING_EXPENSE, -30), (worker_account(w), 30)]
            assert s.execute(text("SELECT answers_total FROM workerproject WHERE worker_id = :w"), {"w": w}).scalar_one() == 1
    finally:
        echo_db.dispose()


def _crowd_rows(database: Database, folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Three workers who disagree, on a project with dynamic overlap: every row the taps write."""
    make_project(database, folder, count=4, overlap=3, price=20, confidence_target=0.8, min_overlap=2)
    crowd = make_workers(database, 3)
    first = {w: database.call(service.next_task, w) for w in crowd}  # makes their standing in the project
    with database.session() as s:  # golden records that weigh their votes differently
        for w, (right, total) in zip(crowd, [(9, 10), (2, 10), (6, 10)], strict=True):
            s.execute(
                text("UPDATE workerproject SET golden_correct = :c, golden_total = :t WHERE worker_id = :w"),
                {"c": right, "t": total, "w": w},
            )
    for i, w in enumerate(crowd):
        card = first[w]
        while isinstance(card, TaskCard):
            label = "0" if i == 0 or card.task_id % 2 else str(i)
            outcome = database.call(answers.act_and_next, w, card.assignment_id, "label", label, chat_id=1, message_id=7)
            assert isinstance(outcome.result, Submitted)
            card = outcome.next  # type: ignore[assignment]
    queries = {
        "task": "SELECT id, taken, answers_count, status, result, confidence FROM task ORDER BY id",
        "answer": "SELECT task_id, worker_id, value, reward, status FROM answer ORDER BY id",
        "worker_project": "SELECT worker_id, answers_total, golden_total, skips_in_row FROM workerproject ORDER BY worker_id",
        "ledger": "SELECT e.account, e.amount, t.key FROM ledgerentry e JOIN ledgertxn t ON t.id = e.txn_id ORDER BY e.id",
    }
    with database.session() as s:
        return {
            name: [tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in s.execute(text(sql)).all()]
            for name, sql in queries.items()
        }


@pytest.mark.postgres
def test_postgresqls_merged_statements_write_what_sqlites_separate_ones_write(db: Database, pg_db: Database, tmp_path: Path) -> None:
    """PostgreSQL records, reads, settles and pays in two statements; SQLite in six: the rows,
    results and confidences of the same taps are the same."""
    merged = _crowd_rows(pg_db, tmp_path / "pg")
    separate = _crowd_rows(db, tmp_path / "lite")
    assert merged == separate
    assert [r[3] for r in merged["task"]].count("done") >= 2 and len(merged["ledger"]) == 2 * len(merged["answer"])


def _settle(task_id: int, result: str) -> hot.Carried:
    shape = (False, False, False)
    return hot.Carried(quality._SETTLE_CTE[shape], quality._SETTLE[shape], {"s_task_id": task_id, "s_result": result, "s_confidence": 0.5})


def _result(db: Database, task_id: int) -> str | None:
    with db.session() as s:
        return s.execute(text("SELECT result FROM task WHERE id = :id"), {"id": task_id}).scalar_one()  # type: ignore[no-any-return]


def test_a_carried_write_is_done_once_with_the_statement_it_rides_on(lane_db: Database, tmp_path: Path) -> None:
    """PostgreSQL: inside the statement; SQLite (no UPDATE inside WITH): on its own, first."""
    make_project(lane_db, tmp_path / "imgs", count=2)
    (w,) = make_workers(lane_db, 1)
    card = lane_db.call(service.next_task, w)
    assert isinstance(card, TaskCard)
    for result in ("b", "c"):  # the first run plans the lane, the second runs on it

        def ride(session: Session, result: str = result) -> tuple[Any, list[hot.Carried]]:
            carry = [_settle(card.task_id, result)]
            row = hot.execute(session, service._WORKER_STATUS, {"worker_id": w}, carry=carry).first()
            return row, carry

        row, carry = lane_db.call(ride)
        assert tuple(row) == ("active", None) and carry == []  # answered as alone; the list was sent
        assert _result(lane_db, card.task_id) == result
    # with nothing to ride on, send() writes them on their own
    lane_db.call(lambda s: hot.send(s, [_settle(card.task_id, "a")]))
    assert _result(lane_db, card.task_id) == "a"


@pytest.mark.postgres
def test_a_carried_write_whose_parameter_clashes_is_refused(pg_db: Database, tmp_path: Path) -> None:
    make_project(pg_db, tmp_path / "imgs", count=2)
    (w,) = make_workers(pg_db, 1)
    card = pg_db.call(service.next_task, w)
    assert isinstance(card, TaskCard)
    clash = hot.Carried(
        quality._SETTLE_CTE[(False, False, False)],
        quality._SETTLE[(False, False, False)],
        {"s_task_id": 1, "s_result": "b", "s_confidence": 0.5, "worker_id": w + 1},
    )
    with pytest.raises(ValueError, match="worker_id"):
        pg_db.call(lambda s: hot.execute(s, service._WORKER_STATUS, {"worker_id": w}, carry=[clash]))
    assert _result(pg_db, card.task_id) is None


_MOVE_ASSIGNMENT = hot.hot(update(Assignment).where(col(Assignment.id) == bindparam("a_id")).values(task_id=bindparam("a_task")))


def test_a_failing_statement_takes_its_carried_writes_with_it(lane_db: Database, tmp_path: Path) -> None:
    make_project(lane_db, tmp_path / "imgs", count=3, overlap=2)
    (w,) = make_workers(lane_db, 1)
    card = lane_db.call(service.next_task, w)
    assert isinstance(card, TaskCard)
    for _ in range(2):  # SQLAlchemy's run, then the lane's
        with pytest.raises(IntegrityError):  # the lease moved to a task that does not exist
            lane_db.call(
                lambda s: hot.execute(
                    s, _MOVE_ASSIGNMENT, {"a_id": card.assignment_id, "a_task": 999_999}, carry=[_settle(card.task_id, "b")]
                )
            )
        assert _result(lane_db, card.task_id) is None
    assert isinstance(_answer(lane_db, w, card).result, Submitted)  # the connection works on


@pytest.mark.postgres
def test_a_parameter_named_like_a_column_a_carried_write_sets_is_refused(pg_db: Database, tmp_path: Path) -> None:
    """SQLAlchemy would add ``status`` and ``project_id`` to the carried UPDATE of the task."""
    make_project(pg_db, tmp_path / "imgs", count=3, overlap=2)
    (w,) = make_workers(pg_db, 1)
    card = pg_db.call(service.next_task, w)
    assert isinstance(card, TaskCard)
    leased_at = pg_db.call(lambda s: s.get(Assignment, card.assignment_id).leased_at)  # type: ignore[union-attr]
    lease = {"task_id": card.task_id + 1, "worker_id": w, "project_id": card.project_id, "status": "leased"}
    lease |= {"leased_at": leased_at, "expires_at": leased_at, "chat_id": None, "message_id": None}
    with pytest.raises(ValueError, match="project_id"):
        pg_db.call(lambda s: hot.execute(s, leasing._INSERT_LEASE, lease, carry=[_settle(card.task_id, "b")]))
    with pg_db.session() as s:
        assert s.execute(text("SELECT status, result FROM task WHERE id = :id"), {"id": card.task_id}).one() == ("open", None)
        assert s.execute(text("SELECT count(*) FROM assignment")).scalar_one() == 1
