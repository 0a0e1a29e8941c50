"""Shows what an attention model looks at: for each audio file, DIR/<id>.png with the
spectrogram and the time-attention weights on the same time axis, the predicted class
and posteriors, and the weight of each descriptor group (pitch, voice quality,
loudness, MFCC, mel, LPC/LSP, ZCR for lld93) on the frames the time attention
selects; DIR/<id>.json holds the per-step weights (ser/explain.py says how the
descriptor weights are computed) and the file's path. <id> is the input's id (the
path, or a wav.scp line's id) with "/" and odd characters as "_"; where two inputs
would get the same name (x/y_z.wav and x_y/z.wav), each gets a short hash of its id
and path added, so that no output overwrites another.

For bundles of the attention variants (lstm_t, lstm_f, lstm_tf, lstm_tf_at). Inputs
as for ser infer (files, directories, wav.scp). Each file is explained whole, as one
input (ser infer averages chunks of longer files, --chunk-seconds). stdout gets ser
infer's CSV line per file; a file that cannot be used gets its error there, as with
ser infer.
Exit status: 0 every file explained, 1 some failed, 2 usage error."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ser.audio import SAMPLE_RATE
from ser.bin import HelpFormatter, run_tool
from ser.bin.infer import ResultWriter, list_inputs
from ser.inference import EmotionClassifier, Prediction
from ser.errors import AudioError, SerError
from ser.explain import explain_batch, explanation_json, feature_groups, plot_explanation
from ser.features import feature_names
from ser.model import ATTENTION_VARIANTS, SERModel, build_model
from ser.timeline import output_names


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="+", help="audio files, directories or wav.scp files")
    p.add_argument("--model", required=True, type=Path, help="the bundle, e.g. exp/synth/<system>/final")
    p.add_argument("--out", required=True, type=Path, help="directory for <id>.png and <id>.json")
    return p


def eager_model(classifier: EmotionClassifier) -> SERModel:
    """The bundle's model as a ser.model.SERModel (the TorchScript file's weights), whose
    attention method gives the weights that model.pt computes but does not return."""
    meta = classifier.meta["model"]
    variant = meta["config"].get("variant")
    if classifier.kind != "torchscript" or variant not in ATTENTION_VARIANTS:
        raise SerError(f"{classifier.bundle_dir}: model {meta.get('name', variant)!r} has no attention "
                       f"layer to show; explain works with {', '.join(ATTENTION_VARIANTS)} bundles")
    model = build_model(**meta["config"])
    model.load_state_dict(classifier.model.state_dict())
    return model.eval()


def main(argv=None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        classifier = EmotionClassifier.load(args.model)
        if classifier.needs_features:
            classifier._refuse_audio()  # explain reads audio: says what such a bundle needs
        model = eager_model(classifier)
        items = list_inputs(args.inputs)
        if not items:
            raise SerError(f"no audio files (*.wav, *.flac) in {' '.join(args.inputs)}")
        args.out.mkdir(parents=True, exist_ok=True)
    except (SerError, OSError) as err:
        parser.exit(2, f"ERROR: {err}\n")
    feat = classifier.meta["features"]["feat"]
    names = feature_names(classifier.extractor, feat)
    groups = feature_groups(feat, names)
    group_columns = {g: [names[c] for c in cols] for g, cols in groups.items()} if feat == "lld93" else None
    frame_shift = float(classifier.extractor.frame_shift)
    labels = classifier.labels
    writer = ResultWriter(sys.stdout, "csv", labels)
    failed = 0
    for (uid, path), name in zip(items, output_names(items)):
        try:
            samples, source = classifier.samples(path, None)
            feats = classifier.features(samples, source)
        except AudioError as err:
            failed += 1
            writer.write(uid, err)
            continue
        exp = explain_batch(model, [feats], groups)[0]
        best = int(exp.posteriors.argmax())
        plot_explanation(exp, samples, SAMPLE_RATE, labels, frame_shift,
                         f"{uid}: {labels[best]} ({exp.posteriors[best]:.2f})", args.out / f"{name}.png")
        data = {"file": path, **explanation_json(exp, uid, labels, frame_shift, group_columns),
                "picture": f"{name}.png"}
        (args.out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        writer.write(uid, Prediction(labels[best], data["posteriors"]))
    if failed:
        logging.warning("%d of %d file(s) could not be explained (see the error column)", failed, len(items))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run_tool(main)
