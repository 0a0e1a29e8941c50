#!/usr/bin/env python3
"""Tuning driver for ser.train on speaker-disjoint INNER validation splits.

Never reads the outer test speaker of fold1 (CASIA: ZhaoZuoxiang; EmoDB: emodb03):
``pack`` drops it before anything else, and ``run`` only sees the packed file.
Each inner split holds out training speakers as validation (CASIA: 1 of the 3;
EmoDB: 3 of the 9) and trains on the rest.

  tune.py pack --corpus casia --scratch . --out .tune_dev/casia.npz [--feat whisper]
  tune.py run --data .tune_dev/casia.npz --name base --train-opts "epochs=30" \
      --model-opts "frame_stack=2" --cmvn utt --results local/tune/results.jsonl
  tune.py fuse --data .tune_dev/casia.npz --other .tune_dev/casia_lld93.npz --out .tune_dev/casia_fused.npz
  tune.py sweep --plan plan.txt --jobs 2 --results ...   (lines: name<TAB>data<TAB>args)
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUTER_TEST = {"casia": "ZhaoZuoxiang", "emodb": "emodb03"}
# EmoDB inner validation groups (3 speakers each, both genders; emodb03 is outer test).
EMODB_GROUPS = [["emodb08", "emodb10", "emodb11"], ["emodb09", "emodb12", "emodb13"],
                ["emodb14", "emodb15", "emodb16"]]


def pack(args):
    import kaldiio
    d = Path(args.scratch) / "data" / args.corpus
    utt2spk = dict(line.split() for line in open(d / "utt2spk"))
    utt2emo = dict(line.split() for line in open(d / "utt2emo"))
    scp = dict(line.split(None, 1) for line in open(d / "feats" / args.feat / "feats.scp"))
    emotions = sorted(set(utt2emo.values()))
    ids = sorted(u for u in scp if utt2spk[u] != OUTER_TEST[args.corpus])
    feats = [kaldiio.load_mat(scp[u].strip()).astype(np.float32) for u in ids]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, ids=np.array(ids), spk=np.array([utt2spk[u] for u in ids]),
                        labels=np.array([emotions.index(utt2emo[u]) for u in ids]),
                        emotions=np.array(emotions), lengths=np.array([f.shape[0] for f in feats]),
                        feats=np.concatenate(feats),
                        names=np.array(open(d / "feats" / args.feat / "feat_names.txt").read().split()),
                        **augmented_copies(d, args.aug_feats, ids))
    print(f"{args.out}: {len(ids)} utterances without {OUTER_TEST[args.corpus]}")


def augmented_copies(data_dir, aug_feats, ids):
    """Speed-perturbed copies (`sp<factor>-<utt>`) of the packed utterances, for training parts."""
    if not aug_feats:
        return {}
    import kaldiio
    scp = dict(line.split(None, 1) for line in open(data_dir / "feats" / aug_feats / "feats.scp"))
    index = {u: i for i, u in enumerate(ids)}
    aug_ids = sorted(a for a in scp if a.split("-", 1)[1] in index)
    feats = [kaldiio.load_mat(scp[a].strip()).astype(np.float32) for a in aug_ids]
    return {"aug_ids": np.array(aug_ids), "aug_base": np.array([index[a.split("-", 1)[1]] for a in aug_ids]),
            "aug_lengths": np.array([f.shape[0] for f in feats]), "aug_feats": np.concatenate(feats)}


def paste(a, shift_a, len_a, b, shift_b, len_b, b_utt_normalised=False):
    """Frames ``a`` (T, D) with ``b``'s beside them, ``b`` linearly interpolated, dimension by
    dimension, at ``a``'s frame centres (frame i of shift s and window w centred at
    i * s + w / 2; past either end the outermost frame repeats); ``b`` then normalised by
    its own mean and variance over the utterance if asked."""
    from ser.cmvn import utterance_cmvn
    target = np.arange(len(a)) * shift_a + len_a / 2
    centres = np.arange(len(b)) * shift_b + len_b / 2
    b = np.stack([np.interp(target, centres, b[:, d]) for d in range(b.shape[1])], axis=1).astype(np.float32)
    return np.concatenate([a, utterance_cmvn(b) if b_utt_normalised else b], axis=1)


def fuse(args):
    """A pack of the first pack's frames with the second's beside them, the second's
    resampled to the first's frame rate (:func:`paste`), copies included."""
    a, b = np.load(args.data), np.load(args.other)
    if list(a["ids"]) != list(b["ids"]):
        sys.exit(f"{args.data} and {args.other} hold different utterances")
    (shift_a, len_a), (shift_b, len_b) = args.frames_a, args.frames_b

    def pasted(prefix):
        if f"{prefix}feats" not in a.files:
            return None
        if list(a[f"{prefix}ids"]) != list(b[f"{prefix}ids"]):
            sys.exit(f"{args.data} and {args.other} hold different copies")
        ba = np.concatenate([[0], np.cumsum(a[f"{prefix}lengths"])])
        bb = np.concatenate([[0], np.cumsum(b[f"{prefix}lengths"])])
        fa, fb = a[f"{prefix}feats"], b[f"{prefix}feats"]
        return np.concatenate([paste(fa[ba[i]:ba[i + 1]], shift_a, len_a, fb[bb[i]:bb[i + 1]], shift_b, len_b,
                                     args.other_utt_normalised)
                               for i in range(len(ba) - 1)])
    out = {k: a[k] for k in a.files if k not in ("feats", "aug_feats", "names")}
    out["feats"] = pasted("")
    aug = pasted("aug_")
    if aug is not None:
        out["aug_feats"] = aug
    out["names"] = np.concatenate([a["names"], b["names"]])
    np.savez_compressed(args.out, **out)
    print(f"{args.out}: {len(out['ids'])} utterances of dimension {out['feats'].shape[1]}")


def inner_splits(corpus, speakers):
    assert OUTER_TEST[corpus] not in speakers
    if corpus == "casia":
        return [[s] for s in sorted(speakers)]
    return EMODB_GROUPS


def stats_model_builder():
    """build_model with an experimental option utterance_stats: the head also sees the
    mean and std over valid frames of each input dimension (the functionals a linear
    model on lld93 needs; trivial under cmvn utt). For tuning only."""
    import torch
    from torch import nn
    from ser import model as ser_model

    class StatsSERModel(ser_model.SERModel):
        def forward(self, feats, lengths):
            valid = (torch.arange(feats.size(1)).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2).to(feats.dtype)
            count = valid.sum(1)
            mean = (feats * valid).sum(1) / count
            std = ((((feats - mean.unsqueeze(1)) * valid) ** 2).sum(1) / count + 1e-5).sqrt()
            x, lens = (self._stack_frames(feats, lengths) if self.frame_stack > 1 else (feats, lengths))
            outputs = self.encoder(self.input_dropout(x))
            batch, frames = outputs.size(0), outputs.size(1)
            last = outputs[torch.arange(batch), lens - 1]
            ok = torch.arange(frames).unsqueeze(0) < lens.unsqueeze(1)
            pooled = []
            if self.time_attention is not None:
                pooled.append(self.time_attention(outputs, last, ok))
            if self.feature_attention is not None:
                pooled.append(self.feature_attention(outputs, ok))
            if not pooled:
                pooled.append(last)
            return self.head(torch.cat(pooled + [self.stats_dropout(torch.cat([mean, std], 1))], dim=1))

    def build(input_dim, num_classes, variant, utterance_stats=False, **options):
        model = ser_model.build_model(input_dim, num_classes, variant, **options)
        if utterance_stats:
            model.__class__ = StatsSERModel
            old = model.head[1]
            model.head[1] = nn.Linear(old.in_features + 2 * input_dim, old.out_features)
            model.stats_dropout = nn.Dropout(float(utterance_stats) if utterance_stats is not True else 0.0)
            model.config["utterance_stats"] = utterance_stats
        return model
    return build


def run(args):
    import torch
    import ser.train
    ser.train.build_model = stats_model_builder()
    from ser.cmvn import Normalizer, accumulate
    from ser.batching import Utterances
    from ser.train import TrainConfig, train_fold
    from ser.config import parse_key_values

    torch.set_num_threads(1)
    z = np.load(args.data)
    corpus = Path(args.data).stem
    ids, spk, labels = list(z["ids"]), list(z["spk"]), z["labels"].tolist()
    bounds = np.concatenate([[0], np.cumsum(z["lengths"])])
    raw = z["feats"]
    names = list(z["names"])
    feats = [raw[bounds[i]:bounds[i + 1]].copy() for i in range(len(ids))]
    if args.logmel:
        cols = [i for i, n in enumerate(names) if n.startswith("melspec")]
        for f in feats:
            f[:, cols] = np.log(np.maximum(f[:, cols], 1.0))
    aug_ids, aug_base, aug_feats = [], [], []
    if args.aug or args.tta:
        ab = np.concatenate([[0], np.cumsum(z["aug_lengths"])])
        aug_raw = z["aug_feats"]  # each z[...] reads the whole array again
        aug_ids = [str(a) for a in z["aug_ids"]]  # sp<factor>-<utt>
        aug_base = z["aug_base"].tolist()
        aug_feats = [aug_raw[ab[i]:ab[i + 1]].copy() for i in range(len(aug_ids))]
    emotions = [str(e) for e in z["emotions"]]
    splits = inner_splits(corpus, set(spk))
    if args.splits:
        splits = [splits[int(i)] for i in args.splits.split(",")]
    train_opts = parse_key_values(args.train_opts)
    model_opts = parse_key_values(args.model_opts)
    per_split = []
    start_all = time.time()
    for valid_spk in splits:
        tr = [i for i in range(len(ids)) if spk[i] not in valid_spk]
        va = [i for i in range(len(ids)) if spk[i] in valid_spk]
        if args.cmvn in ("train", "uttmean"):
            stats = accumulate(tr, lambda i: feats[i], lambda _: "train")
            norm = Normalizer("train", stats)
            if args.cmvn == "uttmean":  # own mean removed, scaled by the training std
                scale = norm.scale["train"]
                norm = lambda f, _s, scale=scale: ((f - f.mean(axis=0)) * scale).astype(np.float32)  # noqa: E731
        else:
            norm = Normalizer(args.cmvn)
        # --aug-factors trains on a subset of the pack's copies; --tta scores with all of them
        aug = [j for j, b in enumerate(aug_base) if spk[b] not in valid_spk and args.aug
               and (not args.aug_factors or aug_ids[j].split("-", 1)[0][2:] in args.aug_factors.split())]
        aug_copies = (aug_ids, aug_base, aug_feats)
        train = Utterances([ids[i] for i in tr] + [aug_ids[j] for j in aug],
                           [norm(feats[i], spk[i]) for i in tr] + [norm(aug_feats[j], spk[aug_base[j]]) for j in aug],
                           [labels[i] for i in tr] + [labels[aug_base[j]] for j in aug])
        valid = Utterances([ids[i] for i in va], [norm(feats[i], spk[i]) for i in va], [labels[i] for i in va])
        config = TrainConfig.from_dict({**train_opts, "device": args.device})
        with tempfile.TemporaryDirectory() as tmp:
            best = train_fold(Path(tmp), train, valid, emotions, {"variant": args.model, **model_opts}, config)
            hist = json.loads((Path(tmp) / "history.json").read_text())["history"]
            tta = None
            if args.posteriors or args.tta:  # of the selected model
                from ser.train import predict
                state = torch.load(Path(tmp) / "best.pt", weights_only=False)
                model = ser.train.build_model(input_dim=train.feats[0].shape[1], num_classes=len(emotions),
                                              **{k: v for k, v in state["model_config"].items()
                                                 if k not in ("input_dim", "num_classes")})
                model.load_state_dict(state["model"])
                post = predict(model, valid, 64, args.device)
            if args.tta:
                tta = test_time_augmentation(model, valid, post, aug_copies, norm, spk, emotions, args.device)
            if args.posteriors:  # for ensembles of runs afterwards
                out = Path(args.posteriors) / f"{args.name}.{corpus}.{'+'.join(valid_spk)}.npz"
                out.parent.mkdir(parents=True, exist_ok=True)
                np.savez(out, ids=np.array(valid.ids), labels=np.array(valid.labels), posteriors=post)
        uars = [h["valid_uar"] for h in hist]
        per_split.append({"valid": valid_spk, **({"tta": tta} if tta else {}), "selected_uar": best["valid_uar"], "selected_epoch": best["epoch"],
                          "last_uar": uars[-1], "last5_uar": float(np.mean(uars[-5:])), "max_uar": max(uars),
                          "curve": [round(u, 4) for u in uars],
                          "sec_per_epoch": float(np.mean([h["seconds"] for h in hist])),
                          "epochs": len(hist)})
        if args.results:  # each split as it ends, for sweeps cut short
            with open(args.results + ".splits", "a") as f:
                f.write(json.dumps({"name": args.name, "corpus": corpus, **per_split[-1]}) + "\n")
    result = {"name": args.name, "corpus": corpus, "model": args.model, "train_opts": args.train_opts,
              "model_opts": args.model_opts, "cmvn": args.cmvn, "logmel": args.logmel, "aug": args.aug,
              "aug_factors": args.aug_factors, "device": args.device,
              "splits": [s["valid"] for s in per_split]}
    for key in ("selected_uar", "last_uar", "last5_uar", "max_uar", "sec_per_epoch"):
        result[key] = round(float(np.mean([s[key] for s in per_split])), 4)
    result["minutes"] = round((time.time() - start_all) / 60, 2)
    result["per_split"] = per_split
    line = json.dumps(result)
    print(line, flush=True)
    if args.results:
        with open(args.results, "a") as f:
            f.write(line + "\n")


def test_time_augmentation(model, valid, post, aug_copies, norm, spk, emotions, device):
    """UAR of the selected model on the validation utterances alone (none), with the
    posteriors of their copies averaged in (all; near: 0.9/1.1 only), and on one factor's
    copies alone (only<factor>)."""
    from ser.metrics import scores
    from ser.batching import Utterances
    from ser.speed import average_with_copies
    from ser.train import predict
    aug_ids, aug_base, aug_feats = aug_copies
    wanted = set(valid.ids)
    js = [j for j, a in enumerate(aug_ids) if a.split("-", 1)[1] in wanted]
    copies = Utterances([aug_ids[j] for j in js], [norm(aug_feats[j], spk[aug_base[j]]) for j in js],
                        [valid.labels[0]] * len(js))  # labels unused
    copy_post = predict(model, copies, 64, device)
    factor_of = [a.split("-", 1)[0][2:] for a in copies.ids]

    def uar(p):
        return round(scores(valid.labels, p.argmax(1).tolist(), emotions)["uar"], 4)

    def averaged(factors):
        keep = [k for k, f in enumerate(factor_of) if f in factors]
        return average_with_copies(valid.ids, post, [copies.ids[k] for k in keep], copy_post[keep])
    factors = sorted(set(factor_of))
    out = {"none": uar(post), "all": uar(averaged(factors)), "near": uar(averaged({"0.9", "1.1"}))}
    for factor in factors:
        alone = {copies.ids[k].split("-", 1)[1]: copy_post[k] for k, f in enumerate(factor_of) if f == factor}
        out[f"only{factor}"] = uar(np.stack([alone[u] for u in valid.ids]))
    return out


def sweep(args):
    """Runs plan lines 'name<TAB>data<TAB>extra args' with at most --jobs at once."""
    plan = [line.split("\t") for line in Path(args.plan).read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    procs = []
    for name, data, extra in plan:
        while len([p for p in procs if p.poll() is None]) >= args.jobs:
            time.sleep(1)
        cmd = [sys.executable, __file__, "run", "--name", name, "--data", data, "--results", args.results,
               *shlex.split(extra)]
        log = open(Path(args.logdir) / f"{name}.{Path(data).stem}.{abs(hash(extra)) % 10**6}.log", "w")
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    for p in procs:
        p.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--corpus", required=True, choices=sorted(OUTER_TEST))
    a.add_argument("--scratch", default=str(Path(__file__).resolve().parents[2]),
                   help="the recipe root whose data/<corpus> to pack (default: this checkout)")
    a.add_argument("--feat", default="lld93", help="feature dir under data/<corpus>/feats/")
    a.add_argument("--out", required=True)
    a.add_argument("--aug-feats", default="", help="feats dir of speed-perturbed copies, e.g. lld93_sp0.9_1.1")
    a = sub.add_parser("fuse")
    a.add_argument("--data", required=True, help="the pack that sets the frame rate")
    a.add_argument("--other", required=True, help="the pack whose frames are resampled and pasted")
    a.add_argument("--frames-a", type=float, nargs=2, default=[0.02, 0.025], metavar=("SHIFT", "LENGTH"),
                   help="frame shift and window of --data, seconds (default: whisper's)")
    a.add_argument("--frames-b", type=float, nargs=2, default=[0.016, 0.032], metavar=("SHIFT", "LENGTH"),
                   help="frame shift and window of --other, seconds (default: lld93's)")
    a.add_argument("--other-utt-normalised", action="store_true",
                   help="normalise --other's frames by each utterance's own mean and variance")
    a.add_argument("--out", required=True)
    a = sub.add_parser("run")
    a.add_argument("--data", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--model", default="lstm_tf_at")
    a.add_argument("--train-opts", default="")
    a.add_argument("--model-opts", default="")
    a.add_argument("--cmvn", default="utt", choices=["utt", "train", "uttmean", "none"])
    a.add_argument("--logmel", action="store_true")
    a.add_argument("--aug", action="store_true", help="add the pack's speed-perturbed copies to training")
    a.add_argument("--aug-factors", default="", help='with --aug: only these factors, e.g. "0.9 1.1" (default: all)')
    a.add_argument("--splits", default="", help="e.g. 0,2")
    a.add_argument("--device", default="cpu")
    a.add_argument("--results")
    a.add_argument("--posteriors", help="dir for the selected model's validation posteriors")
    a.add_argument("--tta", action="store_true",
                   help="also score the selected model with its validation copies' posteriors averaged in")
    a = sub.add_parser("sweep")
    a.add_argument("--plan", required=True)
    a.add_argument("--jobs", type=int, default=2)
    a.add_argument("--results", required=True)
    a.add_argument("--logdir", required=True)
    args = p.parse_args()
    {"pack": pack, "fuse": fuse, "run": run, "sweep": sweep}[args.cmd](args)


if __name__ == "__main__":
    main()
