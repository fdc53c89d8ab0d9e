"""YOLO's data.yaml is read without PyYAML in a slim install: the small reader gives what
PyYAML gives on the forms Ultralytics and Roboflow write, and refuses what it cannot read."""

from __future__ import annotations

import pytest
import yaml

from bot.tasks.datasets import DatasetError
from bot.tasks.formats.yolo import read_names

SAMPLES = [
    "path: ../datasets/coco8\ntrain: images/train\nval: images/val\n\nnames:\n  0: person\n  1: bicycle\n  2: 'traffic light'\n",
    "train: ../train/images\nval: ../valid/images\nnc: 3\nnames: ['cat', 'dog', \"hot dog\"]\n",
    "names: [cat, dog,  bird ]  # three\nnc: 3\n",
    "names:\n- car\n- 'it''s a truck'\n- \"bus, long\"\nroboflow:\n  workspace: x\n",
    "nc: 2\nnames:\n  - 사람\n  - 자전거\n",
    "names: {0: cat, 1: 'dog'}\n",
    "names:\n  # the classes\n  0: a\n\n  1: b\ndownload: https://example.com/x.zip\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_the_reader_agrees_with_pyyaml(text: str) -> None:
    expected = yaml.safe_load(text)["names"]
    got = read_names(text)
    if isinstance(expected, dict):
        assert isinstance(got, dict)
        assert {int(k): v for k, v in got.items()} == expected
    else:
        assert got == expected


def test_no_names_and_unreadable_names() -> None:
    assert read_names("train: a\nval: b\n") is None
    with pytest.raises(DatasetError, match="end on its line"):
        read_names("names: [a,\n  b]\n")
    with pytest.raises(DatasetError, match="list or a map"):
        read_names("names: cat\n")
