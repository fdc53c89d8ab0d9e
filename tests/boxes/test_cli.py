"""``crowdpin admin load`` / ``export`` on a validation round: formats detected or forced, score
window, sample, verified sets with and without the rejected boxes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bot.db import Database
from bot.sample_boxes import RIGHT
from tests.admin.conftest import Cli
from tests.boxes.helpers import answer_truthfully, dataset, task_truth


def test_a_validation_round_from_the_command_line(cli: Cli, db: Database, tmp_path: Path) -> None:
    source, preds = dataset(tmp_path / "ds", "yolo", images=6)
    cli("project", "create", "--name", "Boxes", "--type", "confirm-box", "--overlap", "1")
    refused = cli("load", "Boxes", str(source), "--min-score", "0.9", "--max-score", "0.1", ok=False)
    assert refused.exit_code == 1 and "min-score 0.9 is above max-score 0.1" in refused.stderr
    result = cli("load", "Boxes", str(source / "data.yaml"), "--max-score", "0.8", "--reference")
    kept = [p for p in preds if p.score <= 0.8]
    assert f"{len(kept)} task(s) added" in result.stdout and f"{len(preds) - len(kept)} left out by score/sample" in result.stdout
    truth = task_truth(db, preds)
    answer_truthfully(db, truth)
    accepted = sum(p.truth == RIGHT for p in truth.values())
    out = cli("export", "Boxes", "--format", "yolo", "--out", str(tmp_path / "y"))
    assert f"wrote {accepted} results row(s)" in out.stdout
    assert sum(len(f.read_text().splitlines()) for f in (tmp_path / "y" / "labels").glob("*.txt")) == accepted
    cli("export", "Boxes", "--format", "label-studio", "--out", str(tmp_path / "ls.json"), "--include-rejected")
    regions = [r for task in json.loads((tmp_path / "ls.json").read_text()) for r in task["annotations"][0]["result"]]
    assert len(regions) == len(kept)
    cli("export", "Boxes", "--format", "csv", "--what", "results", "--out", str(tmp_path / "boxes.csv"))
    with (tmp_path / "boxes.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == accepted and {r["verdict"] for r in rows} == {"accepted"}
    assert all(float(r["width"]) > 0 and r["label"] for r in rows)
    # a YOLO export will not overwrite a folder that holds something else
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    bad = cli("export", "Boxes", "--format", "yolo", "--out", str(tmp_path / "other"), ok=False)
    assert bad.exit_code == 1 and "holds other files" in bad.stderr and (tmp_path / "other" / "keep.txt").exists()
    # answers of a box project cannot be a YOLO file
    bad = cli("export", "Boxes", "--format", "yolo", "--what", "answers", "--out", str(tmp_path / "z"), ok=False)
    assert "use --what results" in bad.stderr
