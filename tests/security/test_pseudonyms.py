"""Item 4 of issue 18: pseudonyms cannot be reversed with a key everybody knows.

Before the fix the built-in key ``crowdpin-pseudonym`` was used unless the operator set one,
so hashing ids 1..1,000,000 with it mapped every pseudonym back to its worker.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import get_settings
from bot.db import Database
from bot.tasks import datasets
from bot.tasks.pseudonym_key import PUBLIC_DEFAULT, InstanceSecret, WeakSecret, pseudonym_secret
from tests.admin.conftest import Cli
from tests.admin.helpers import answer_all, classify_project, jpeg


def _reverse_with(key: str, max_id: int = 10_000) -> dict[str, int]:
    return {"w_" + hmac.new(key.encode(), f"worker:{i}".encode(), hashlib.sha256).hexdigest()[:16]: i for i in range(1, max_id + 1)}


def _workers_in(path: Path) -> set[str]:
    with path.open(newline="") as fh:
        return {row["worker"] for row in csv.DictReader(fh)}


def test_without_a_secret_a_random_key_is_made_once_and_kept(
    cli: Cli, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PSEUDONYM_SECRET", raising=False)
    get_settings.cache_clear()
    project = classify_project(db, overlap=2)
    assert project.id is not None
    for i in range(3):
        jpeg(tmp_path / "imgs" / f"{i}.jpg", seed=i)
    datasets.load(db, project.id, tmp_path / "imgs", media_dir=None, copy=False)
    answer_all(db, 2, lambda card, wid: "cat")
    cli("export", project.id, "--out", tmp_path / "a.csv")
    get_settings.cache_clear()  # as a new process would
    cli("export", project.id, "--out", tmp_path / "b.csv")
    first, second = _workers_in(tmp_path / "a.csv"), _workers_in(tmp_path / "b.csv")
    assert len(first) == 2 and first == second  # stable across runs
    assert not first & set(_reverse_with(PUBLIC_DEFAULT))  # the public key reverses nothing
    with db.read_session() as s:
        rows = list(s.execute(select(InstanceSecret)).scalars())
    assert len(rows) == 1 and len(rows[0].value) == 64
    assert pseudonym_secret(db) == rows[0].value


def test_an_operator_secret_wins_and_the_public_default_is_refused(cli: Cli, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pseudonym_secret(db, "a-long-operator-secret") == "a-long-operator-secret"
    for weak in (PUBLIC_DEFAULT, "short"):
        with pytest.raises(WeakSecret):
            pseudonym_secret(db, weak)
    project = classify_project(db)
    monkeypatch.setenv("PSEUDONYM_SECRET", PUBLIC_DEFAULT)
    get_settings.cache_clear()
    refused = cli("export", str(project.id), "--out", "x.csv", ok=False)
    assert refused.exit_code == 1 and "PSEUDONYM_SECRET is public" in refused.stderr
