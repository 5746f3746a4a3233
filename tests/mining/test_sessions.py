"""Active-learning sessions over the database (migration 0020): the loop learns a category on
real patches, every answer is kept with who and when, and bad input records nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from candela.db import mining_labels as db
from candela.mining import learner, sessions
from tests.mining.helpers import fill_chip


@pytest.fixture
def chip(catalog_dsn: str, tmp_path: Path) -> tuple[str, dict[int, str]]:
    return catalog_dsn, fill_chip(catalog_dsn, tmp_path / "ql")


def _answer(dsn: str, sid: int, user: str, truth: dict[int, str], batch: list[int]) -> None:
    db.add_labels(dsn, sid, user, [(p, "yes" if truth[p] == "water" else "no") for p in batch])


def test_the_loop_learns_water(chip: tuple[str, dict[int, str]]) -> None:
    dsn, truth = chip
    example = next(p for p, t in truth.items() if t == "water")
    s = sessions.start(
        dsn, "alice", "water", search={"dataset": "sen1floods11"}, example_patch_id=example
    )
    first = sessions.next_batch(dsn, s["id"], "alice")
    assert first["iteration"] == 1 and len(first["batch"]) == learner.BATCH
    assert first["n_yes"] == 1 and first["pool"] == len(truth)
    batch = first["batch"]
    for _ in range(4):
        _answer(dsn, s["id"], "alice", truth, batch)
        step = sessions.next_batch(dsn, s["id"], "alice")
        assert not set(step["batch"]) & set(db.current_labels(dsn, s["id"]))  # never asked twice
        batch = step["batch"]
    its = db.iterations(dsn, s["id"])
    assert [i["iteration"] for i in its] == [1, 2, 3, 4, 5]
    assert its[-1]["n_yes"] + its[-1]["n_no"] == 41 and its[-1]["est_f1"] is not None
    got = {p for p, _ in sessions.retrieved(dsn, s["id"], "alice", limit=10_000)}
    want = {p for p, t in truth.items() if t == "water"}
    _, _, f1 = learner.scores(
        np.array([p in want for p in truth]), np.array([p in got for p in truth])
    )
    assert f1 >= 0.8, f1
    history = db.label_history(dsn, s["id"])
    assert history[0]["patch_id"] == example and history[0]["iteration"] == 0
    assert {h["labelled_by"] for h in history} == {"alice"}
    assert all(h["labelled_at"] is not None for h in history)
    assert {h["iteration"] for h in history} == {0, 1, 2, 3, 4}


def test_two_users_same_category_have_separate_sessions(chip: tuple[str, dict[int, str]]) -> None:
    dsn, truth = chip
    ids = sorted(truth)
    a = sessions.start(dsn, "alice", "water")
    b = sessions.start(dsn, "bob", "water")
    assert a["id"] != b["id"]
    assert sessions.start(dsn, "alice", "water")["id"] == a["id"]  # reopened, not duplicated
    again = sessions.start(dsn, "alice", "water", search={"dataset": "sen1floods11"})
    assert again["id"] == a["id"] and again["search"] == {"dataset": "sen1floods11"}
    with pytest.raises(sessions.EmptyPool, match="no mined patch matches"):
        sessions.start(dsn, "carol", "water", search={"dataset": "nowhere"})
    assert db.sessions(dsn, "carol") == []
    db.add_labels(dsn, a["id"], "alice", [(ids[0], "yes")])
    db.add_labels(dsn, b["id"], "bob", [(ids[0], "no")])
    assert db.current_labels(dsn, a["id"]) == {ids[0]: "yes"}
    assert db.current_labels(dsn, b["id"]) == {ids[0]: "no"}
    with pytest.raises(db.NoSession):
        db.add_labels(dsn, a["id"], "bob", [(ids[1], "yes")])
    with pytest.raises(db.NoSession):
        db.get_session(dsn, a["id"], "bob")
    assert [s["id"] for s in db.sessions(dsn, "bob")] == [b["id"]]
    # a changed mind: both answers kept, the latest counts
    db.add_labels(dsn, a["id"], "alice", [(ids[0], "no")])
    assert db.current_labels(dsn, a["id"]) == {ids[0]: "no"}
    assert [h["label"] for h in db.label_history(dsn, a["id"])] == ["yes", "no"]


def test_bad_labels_record_nothing(chip: tuple[str, dict[int, str]]) -> None:
    dsn, truth = chip
    ids = sorted(truth)
    s = sessions.start(dsn, "alice", "water")
    with pytest.raises(db.BadLabel, match="maybe"):
        db.add_labels(dsn, s["id"], "alice", [(ids[0], "yes"), (ids[1], "maybe")])
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM candela.mine_patches WHERE id = %s", (ids[2],))
    with pytest.raises(db.UnknownPatches, match=f"no patch {ids[2]}"):
        db.add_labels(dsn, s["id"], "alice", [(ids[0], "yes"), (ids[2], "no")])
    assert db.current_labels(dsn, s["id"]) == {}
    with pytest.raises(db.UnknownPatches):
        sessions.start(dsn, "alice", "forest", example_patch_id=ids[2])
    # a patch deleted after it was answered: its answers go with it
    db.add_labels(dsn, s["id"], "alice", [(ids[3], "yes")])
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM candela.mine_patches WHERE id = %s", (ids[3],))
    assert db.current_labels(dsn, s["id"]) == {}


def test_sql_mode_reads_the_label_views(chip: tuple[str, dict[int, str]]) -> None:
    """The README's query joining answers to features runs as the read-only role; the tables
    behind the views stay out of its reach."""
    from candela.db import mining

    dsn, truth = chip
    ids = sorted(truth)
    s = sessions.start(dsn, "alice", "water")
    db.add_labels(dsn, s["id"], "alice", [(ids[0], "yes"), (ids[1], "no"), (ids[2], "no")])
    sessions.next_batch(dsn, s["id"], "alice")
    cols, rows, truncated = mining.readonly_query(
        dsn,
        "SELECT l.category, l.label, avg(candela.mine_feature(p.feature_names, p.features,"
        " 'mndwi_mean')) FROM candela.mine_v_labels l JOIN candela.mine_v_patches p"
        " ON p.id = l.patch_id GROUP BY 1, 2 ORDER BY 1, 2",
    )
    assert cols[:2] == ["category", "label"] and not truncated
    assert [(r[0], r[1]) for r in rows] == [("water", "no"), ("water", "yes")]
    _, its, _ = mining.readonly_query(
        dsn, "SELECT iteration, n_yes, n_no FROM candela.mine_v_iterations"
    )
    assert its == [(1, 1, 2)]
    with pytest.raises(mining.QueryRefused):
        mining.readonly_query(dsn, "SELECT * FROM candela.mine_labels")
