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
    # mean ± t(0.975, n - 1) · sd / sqrt(n), by hand: t(0.975, 3) = 3.182446
    diff = np.subtract(worse, better)
    half = 3.182446 * diff.std(ddof=1) / np.sqrt(4)
    assert result["ci95"] == pytest.approx((diff.mean() - half, diff.mean() + half), abs=1e-6)
    assert paired_test([0.5, 0.6], [0.4, 0.5])["ci95"] == pytest.approx((0.1, 0.1))
    with pytest.raises(ValueError):
        paired_test([0.5], [0.6])


def _hand_written_scores(refs, hyps, labels):
    """The definitions ser.metrics used before it called scikit-learn."""
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, (np.asarray(refs), np.asarray(hyps)), 1)
    support, predicted, true_pos = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    present = support > 0
    recall = np.divide(true_pos, support, out=np.zeros(len(labels)), where=present)
    precision = np.divide(true_pos, predicted, out=np.zeros(len(labels)), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(labels)), where=denom > 0)
    return {"uar": recall[present].mean(), "wa": true_pos.sum() / matrix.sum(),
            "macro_f1": f1[present].mean(),
            "per_class_recall": {lab: r for lab, r, p in zip(labels, recall, present) if p},
            "confusion": matrix.tolist()}


@pytest.mark.parametrize("seed", range(6))
def test_scikit_learn_scores_match_the_hand_written_definitions(seed):
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c", "d", "e"]
    refs = rng.integers(0, 4, size=40)            # "e" never in the references
    hyps = np.where(rng.random(40) < 0.5, refs, rng.integers(0, 5, size=40))
    hyps[hyps == 2] = 3                           # "c" never predicted
    if seed % 2:
        hyps = list(map(int, hyps))               # lists and arrays alike
    got, expected = scores(refs, hyps, labels), _hand_written_scores(refs, hyps, labels)
    for key in ("uar", "wa", "macro_f1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert got["per_class_recall"].keys() == expected["per_class_recall"].keys() == {"a", "b", "c", "d"}
    for label, value in expected["per_class_recall"].items():
        assert got["per_class_recall"][label] == pytest.approx(value, abs=1e-12)
    assert got["per_class_recall"]["c"] == 0.0
    assert got["confusion"] == expected["confusion"] and got["num_utts"] == 40


def test_confusion_matrix_refuses_indices_outside_the_labels():
    from ser.metrics import confusion_matrix
    assert confusion_matrix([0, 1, 1], [1, 1, 0], 3).tolist() == [[0, 1, 0], [1, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="hypotheses must be class indices 0..1"):
        scores([0, 1], [0, 2], ["a", "b"])
    with pytest.raises(ValueError, match="references must be class indices"):
        confusion_matrix([-1, 0], [0, 0], 2)


@pytest.mark.parametrize("refs, hyps, labels", [
    ([0, 0], [0, 0], ["a", "b"]),          # one class in both lists
    ([1], [0], ["a", "b"]),                # nothing right
    ([2, 2, 2], [0, 1, 0], ["a", "b", "c"]),
    ([0, 1], [1, 1], ["a", "b"]),
])
def test_small_cases_match_the_hand_written_definitions(refs, hyps, labels):
    got, expected = scores(refs, hyps, labels), _hand_written_scores(refs, hyps, labels)
    for key in ("uar", "wa", "macro_f1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert got["per_class_recall"] == pytest.approx(expected["per_class_recall"])
    assert got["confusion"] == expected["confusion"]
