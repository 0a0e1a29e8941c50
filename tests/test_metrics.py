import numpy as np
import pytest

from ser.metrics import confusion_text, mean_std, plot_confusion, scores


def test_scores_on_a_known_example():
    labels = ["a", "b", "c"]
    refs = [0, 0, 0, 0, 1, 1, 2, 2]
    hyps = [0, 0, 0, 1, 1, 0, 2, 2]
    s = scores(refs, hyps, labels)
    assert s["wa"] == pytest.approx(6 / 8)
    assert s["uar"] == pytest.approx((3 / 4 + 1 / 2 + 1) / 3)
    # F1: a: p=3/4 r=3/4; b: p=1/2 r=1/2; c: 1
    assert s["macro_f1"] == pytest.approx((0.75 + 0.5 + 1) / 3)
    assert s["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert s["per_class_recall"] == {"a": 0.75, "b": 0.5, "c": 1.0}


def test_absent_classes_are_left_out_of_uar():
    s = scores([0, 0, 1], [0, 2, 1], ["a", "b", "c"])
    assert s["uar"] == pytest.approx((0.5 + 1) / 2)
    assert "c" not in s["per_class_recall"]


def test_bad_input():
    with pytest.raises(ValueError):
        scores([], [], ["a"])
    with pytest.raises(ValueError):
        scores([0, 1], [0], ["a", "b"])


def test_mean_std_and_reports(tmp_path):
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.4, 0.6])
    assert mean == pytest.approx(0.5) and std == pytest.approx(np.std([0.4, 0.6], ddof=1))
    s = scores([0, 1, 1], [0, 1, 0], ["neutral", "angry"])
    assert confusion_text(s).splitlines()[1].split()[0] == "neutral"
    plot_confusion(s, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_paired_test_is_left_tailed():
    from ser.metrics import paired_test
    worse = [0.50, 0.55, 0.52, 0.48]
    better = [0.60, 0.62, 0.61, 0.59]
    result = paired_test(worse, better)
    assert result["n"] == 4 and result["mean_diff"] == pytest.approx(-0.0925)
    assert result["p_less"] < 0.01 < result["p_two_sided"] * 10
    assert paired_test(better, worse)["p_less"] > 0.99
    with pytest.raises(ValueError):
        paired_test([0.5], [0.6])
