"""Several threads (PostgreSQL DB pool) may make the same phone copy at once: none may fail."""

from __future__ import annotations

import threading
from pathlib import Path

from PIL import Image as PILImage

from bot.sample import generate
from bot.tasks.media import ensure_phone_copy, sha256_file


def test_concurrent_phone_copies_of_one_image(tmp_path: Path) -> None:
    (sample,) = generate(tmp_path / "src", count=1)
    big = tmp_path / "big.png"
    PILImage.open(sample.path).resize((2600, 1950)).save(big)
    digest = sha256_file(big)
    errors: list[BaseException] = []
    results: list[Path] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        try:
            barrier.wait()
            results.append(ensure_phone_copy(str(big), digest, tmp_path / "media"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(set(results)) == 1
    with PILImage.open(results[0]) as phone:
        assert phone.format == "JPEG" and max(phone.size) == 1280
    assert not list((tmp_path / "media").rglob("*.part"))
