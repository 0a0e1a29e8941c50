"""Classifies audio with a model bundle (ser export-model): one line per file with the
predicted emotion and every class's posterior, as CSV (default) or JSON lines.

Inputs: audio files (any sample rate, mono or stereo), directories (searched
recursively for *.wav and *.flac, the suffix in any case) and Kaldi wav.scp files
(``<id> <path>`` or ``<id> <command> |`` lines; the line's id names the result). A file that cannot be classified gets a line with the
reason in ``error`` and the others are still classified. Files longer than
--chunk-seconds are classified in overlapping chunks whose posteriors are averaged.

Emotion over time (--segments): each file is cut into --window-second windows every
--hop seconds (the last window ends with the file) and each window is classified by
itself: one line per window with id, start, end (seconds), emotion and posteriors. --plot DIR also draws a timeline per file, DIR/<id>.png, <id>
being the id with "/" and odd characters as "_", and a short hash of the id and path
added where two inputs would otherwise share a picture (x/y_z.wav and x_y/z.wav).

--feats-scp PATH classifies the features of a Kaldi feats.scp instead of audio (one line
per utterance): what a bundle trained on external features (run.sh --feat external)
needs, since it cannot compute them; such a bundle given audio says so and exits 2.

A bundle whose model was trained with speed-perturbed copies classifies each file as
stage 6 scores it: its posteriors averaged with those of its own copies at the same
factors (sox -R speed, as stage 3 makes them); --test-copies none classifies the file
alone (faster; the results' "originals" columns), and windows (--segments) and
--feats-scp always go alone.

--backend onnx runs the bundle's model.onnx with onnxruntime instead of the
TorchScript model.pt (same posteriors within 1e-4).
Exit status: 0 every file classified, 1 some failed, 2 usage error."""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from ser.bin import HelpFormatter, run_tool
from ser.inference import (BACKENDS, BATCH_SIZE, CHUNK_OVERLAP, CHUNK_SECONDS, SEGMENT_HOP, SEGMENT_WINDOW,
                           EmotionClassifier, Prediction, Segment)
from ser.datadir import read_table
from ser.errors import AudioError, SerError

AUDIO_SUFFIXES = (".wav", ".flac")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="*", help="audio files, directories or wav.scp files")
    p.add_argument("--feats-scp", type=Path,
                   help="classify these features (Kaldi feats.scp) instead of audio: for bundles "
                        "trained on external features")
    p.add_argument("--model", required=True, type=Path, help="the bundle, e.g. exp/synth/<system>/final")
    p.add_argument("--format", default="csv", choices=("csv", "json"), help="CSV or JSON lines")
    p.add_argument("--output", type=Path, help="write here instead of stdout")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="files (and chunks) per model call")
    p.add_argument("--chunk-seconds", type=float, default=CHUNK_SECONDS, help="longer files go in chunks")
    p.add_argument("--chunk-overlap", type=float, default=CHUNK_OVERLAP,
                   help="least overlap of chunks, seconds")
    p.add_argument("--device", default="cpu", help="cpu or cuda (torchscript backend)")
    p.add_argument("--backend", default="torchscript", choices=BACKENDS,
                   help="torchscript (model.pt) or onnx (model.onnx through onnxruntime)")
    p.add_argument("--test-copies", default="bundle",
                   help="speed factors of test-time copies averaged with each file: 'bundle' (those its "
                        "model was trained with), 'none', or factors, e.g. '0.9 1.1'")
    p.add_argument("--segments", action="store_true", help="one line per window: emotion over time")
    p.add_argument("--window", type=float, default=SEGMENT_WINDOW,
                   help="--segments: window length, seconds")
    p.add_argument("--hop", type=float, default=SEGMENT_HOP,
                   help="--segments: hop between windows, seconds")
    p.add_argument("--plot", type=Path, help="--segments: write a timeline picture per file here")
    return p


def copies_option(option: str) -> list[str] | None:
    """--test-copies as EmotionClassifier's ``test_copies``: None for the bundle's factors."""
    if option == "bundle":
        return None
    return [] if option == "none" else option.replace(",", " ").split()


def list_inputs(inputs: list[str]) -> list[tuple[str, str]]:
    """(id, path) pairs: a file as given, a directory's audio files sorted, wav.scp lines.
    A path that does not exist stays, to get its error line."""
    items = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            items += [(str(p), str(p)) for p in sorted(path.rglob("*"))
                      if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()]
        elif path.suffix == ".scp" and path.is_file():
            items += list(read_table(path).items())
        else:
            items.append((name, name))
    return items


class ResultWriter:
    """CSV: id,emotion,<one column per label>,error. JSON lines: id, emotion,
    posteriors (label -> probability), error; a failed file has no emotion or posteriors."""

    def __init__(self, out: TextIO, fmt: str, labels: list[str], segments: bool = False):
        self.out, self.fmt, self.labels = out, fmt, labels
        if fmt == "csv":
            self.csv = csv.writer(out, lineterminator="\n")
            self.csv.writerow(["id", *(["start", "end"] if segments else []), "emotion", *labels, "error"])

    def write_segments(self, uid: str, result: list[Segment] | AudioError) -> None:
        """--segments: one line per window (id, start, end, emotion, posteriors), or the
        file's one error line."""
        if isinstance(result, AudioError):
            if self.fmt == "json":
                self.out.write(json.dumps({"id": uid, "start": None, "end": None, "emotion": None,
                                           "posteriors": None, "error": result.reason}) + "\n")
            else:
                self.csv.writerow([uid, "", "", "", *[""] * len(self.labels), result.reason])
        for seg in [] if isinstance(result, AudioError) else result:
            if self.fmt == "json":
                self.out.write(json.dumps({"id": uid, "start": seg.start, "end": seg.end, "emotion": seg.label,
                                           "posteriors": seg.posteriors, "error": None}) + "\n")
            else:
                self.csv.writerow([uid, f"{seg.start:.3f}", f"{seg.end:.3f}", seg.label,
                                   *(f"{seg.posteriors[label]:.6f}" for label in self.labels), ""])
        self.out.flush()

    def write(self, uid: str, result: Prediction | AudioError) -> None:
        ok = isinstance(result, Prediction)
        if self.fmt == "json":
            self.out.write(json.dumps({"id": uid, "emotion": result.label if ok else None,
                                       "posteriors": result.posteriors if ok else None,
                                       "error": None if ok else result.reason}) + "\n")
        elif ok:
            self.csv.writerow([uid, result.label, *(f"{result.posteriors[label]:.6f}" for label in self.labels), ""])
        else:
            self.csv.writerow([uid, "", *[""] * len(self.labels), result.reason])
        self.out.flush()


def classify(classifier: EmotionClassifier, items: list[tuple[str, str]], writer: ResultWriter,
             batch_size: int) -> int:
    """Writes one line per (id, path), in order; returns how many failed."""
    failed = 0
    with tqdm(total=len(items), unit="file", disable=len(items) <= batch_size) as progress:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            results = classifier.predict_batch([path for _, path in batch])
            for (uid, _), result in zip(batch, results, strict=True):
                failed += isinstance(result, AudioError)
                writer.write(uid, result)
            progress.update(len(batch))
    return failed


def classify_features(classifier: EmotionClassifier, feats_scp: Path, writer: ResultWriter,
                      batch_size: int) -> list[str]:
    """One line per utterance of a Kaldi feats.scp, in its order; every entry is checked
    (readable, finite, the model's dimension) and an error names the file and utterance."""
    from ser.external_feats import load_checked, read_scps

    entries, origin = read_scps([feats_scp])
    dim = classifier.meta["features"].get("dim")
    utts = list(entries)
    for start in range(0, len(utts), batch_size):
        batch = utts[start:start + batch_size]
        feats = []
        for utt in batch:
            mat = load_checked(utt, entries[utt], origin[utt])
            if dim is not None and mat.shape[1] != dim:
                raise SerError(f"{feats_scp}: utterance {utt} has dimension {mat.shape[1]}; "
                               f"the model takes {dim}")
            feats.append(mat)
        for utt, result in zip(batch, classifier.predict_features(feats), strict=True):
            writer.write(utt, result)
    return utts


def classify_segments(classifier: EmotionClassifier, items: list[tuple[str, str]], writer: ResultWriter,
                      window: float, hop: float, plot_dir: Path | None) -> int:
    """--segments: the windows of each file, in order (one file at a time, as a long
    recording has many windows); returns how many files failed."""
    from ser.timeline import output_names, plot_timeline

    failed = 0
    names = output_names(items)
    for (uid, path), name in tqdm(list(zip(items, names)), unit="file", disable=len(items) <= 1):
        result = classifier.predict_segments([path], window, hop)[0]
        failed += isinstance(result, AudioError)
        writer.write_segments(uid, result)
        if plot_dir is not None and not isinstance(result, AudioError):
            plot_timeline(result, classifier.labels, f"{uid}: {window:g} s windows every {hop:g} s",
                          plot_dir / f"{name}.png")
    return failed


def main(argv=None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        if args.plot and not args.segments:
            raise SerError("--plot draws the timeline of --segments; add --segments")
        if args.segments and not (args.hop > 0 and args.window > 0):
            raise SerError(f"--window ({args.window}) and --hop ({args.hop}) must be positive")
        classifier = EmotionClassifier.load(args.model, device=args.device, batch_size=args.batch_size,
                                            chunk_seconds=args.chunk_seconds, chunk_overlap=args.chunk_overlap,
                                            backend=args.backend, test_copies=copies_option(args.test_copies))
        if args.feats_scp is not None:
            if args.inputs or args.segments:
                raise SerError("--feats-scp classifies features; give no audio inputs or --segments with it")
            items = []
        elif not args.inputs:
            raise SerError("give audio inputs, or --feats-scp PATH")
        else:
            if getattr(classifier, "needs_features", False):
                classifier._refuse_audio()  # says what it needs instead
            items = list_inputs(args.inputs)
        if args.feats_scp is None and not items:
            raise SerError(f"no audio files (*.wav, *.flac) in {' '.join(args.inputs)}")
        if args.plot:
            args.plot.mkdir(parents=True, exist_ok=True)
        output = open(args.output, "w") if args.output else nullcontext(sys.stdout)
    except (SerError, OSError) as err:
        parser.exit(2, f"ERROR: {err}\n")
    with output as stream:
        writer = ResultWriter(stream, args.format, classifier.labels, args.segments)
        if args.feats_scp is not None:
            try:
                items, failed = classify_features(classifier, args.feats_scp, writer, args.batch_size), 0
            except SerError as err:
                parser.exit(2, f"ERROR: {err}\n")
        elif args.segments:
            failed = classify_segments(classifier, items, writer, args.window, args.hop, args.plot)
        else:
            failed = classify(classifier, items, writer, args.batch_size)
    if failed:
        logging.warning("%d of %d file(s) could not be classified (see the error column)", failed, len(items))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run_tool(main)
