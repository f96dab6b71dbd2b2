"""The default model is converted once, even when several processes need it at the same time."""

import threading
import time

from cai.engine import models


def test_concurrent_prepares_convert_the_default_model_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CAI_HOME", str(tmp_path))
    conversions = []

    def slow_convert(target):
        conversions.append(target)
        time.sleep(0.5)  # long enough for every other caller to arrive meanwhile
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert", slow_convert)
    results = []
    callers = [threading.Thread(target=lambda: results.append(models.prepare_default_model())) for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(conversions) == 1
    assert results == [tmp_path / "models" / models.DEFAULT_MODEL] * 4
