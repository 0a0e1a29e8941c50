"""Results saved before the retired training options (ser/train.py: RETIRED_OPTIONS) went
hold them at their no-op values: local/make_results.py joins new runs to such a row,
and replaces one trained with any of them."""
from __future__ import annotations

import json
import shutil

from test_make_results import fake_system, make_results

from ser.train import RETIRED_OPTIONS


def _saved_with(row_path, options: dict) -> None:
    row = json.loads(row_path.read_text())
    row["train_config"].update(options)
    row_path.write_text(json.dumps(row, indent=1) + "\n")


def test_a_row_saved_with_the_retired_options_at_their_no_op_values_keeps_its_runs(tmp_path):
    exp = tmp_path / "exp"
    row_path = tmp_path / "rows" / "casia_loso_svm.json"
    for retired, joined in ((RETIRED_OPTIONS, True), ({**RETIRED_OPTIONS, "mixup_alpha": 0.2}, False)):
        shutil.rmtree(exp, ignore_errors=True)
        row_path.unlink(missing_ok=True)
        fake_system(exp, "compare_functionals_svm", {("fold1", 1): 0.40, ("fold2", 1): 0.40})
        assert make_results(exp, tmp_path, "--speed-perturb", "none").returncode == 0
        assert not RETIRED_OPTIONS.keys() & json.loads(row_path.read_text())["train_config"].keys()
        _saved_with(row_path, retired)
        shutil.rmtree(exp)  # a fresh checkout with seed 2, trained after the options went
        fake_system(exp, "compare_functionals_svm", {("fold1", 2): 0.50, ("fold2", 2): 0.50})
        out = make_results(exp, tmp_path, "--speed-perturb", "none")
        assert out.returncode == 0, out.stderr
        row = json.loads(row_path.read_text())
        assert row["seeds"] == ([1, 2] if joined else [2])
        assert ("replacing the saved row" in out.stderr) != joined
