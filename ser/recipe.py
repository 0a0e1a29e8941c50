"""run.sh's settings and the names of the data, feature and exp dirs they make.

run.sh states every option's default in its option block (which its --help lists);
conf/feat_defaults/<feat>.conf, then conf/corpus/<corpus>.conf, override those defaults, and
the command line overrides them all. :func:`recipe_settings` reads these files the same way,
so that run.sh (``ser.bin.recipe_info names``, once per run) and local/make_results.py name
the same dirs for the same options from this one module.

Output dirs are named from the settings that make them (the ESPnet way), so that output made
with other settings never lands in an old dir; each dir's .done record (utils/lib.sh) then
catches what a name does not show:

  data/<corpus>[_<emotion variant>...]         one corpus, or <a>+<b>[_to_<test>] for several
  <data>/folds/<protocol>[_k<K>][_seed<S>][_test<share>]
  <data>/feats/<feat>[_<feat-opts tag>][_<sha1 of the scp paths>][_sp<factors>]
  exp/<data name>/<feat name>_<model>[_cmvn-<cmvn>][_sp<factors>][_<model-opts tag>][_<train-opts tag>][_<exp tag>]/<folds name>
"""
from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ser.config import CONF_ROOT, MODEL_CONF_DIR, list_models, shell_assignments
from ser.errors import SerError
from ser.provenance import options_tag
from ser.speed import factors_tag, split_factors

RECIPE_ROOT = CONF_ROOT.parent
RUN_SH = RECIPE_ROOT / "run.sh"
# The paper's baseline on the main system's folds: its own features, none of the main
# system's feature, model or training options.
BASELINE_FEAT = "compare_functionals"


def _command_line(args: Sequence[str]) -> list[tuple[str, str]]:
    """(name, value) of each ``--name value`` / ``--name=value`` of run.sh's command line, in
    order, with --config FILE's assignments in its place (utils/parse_options.sh's rules)."""
    pairs, i = [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise SerError(f"run.sh: unexpected argument(s): {' '.join(args[i:])}")
        if "=" in arg:
            option, value = arg[2:].split("=", 1)
            i += 1
        elif i + 1 < len(args):
            option, value = arg[2:], args[i + 1]
            i += 2
        else:
            raise SerError(f"run.sh: option {arg} needs a value")
        if option == "config":
            if not Path(value).is_file():
                raise SerError(f"run.sh: config file '{value}' not found")
            pairs.extend(shell_assignments(Path(value)).items())
        else:
            pairs.append((option.replace("-", "_"), value))
    return pairs


def recipe_settings(args: Sequence[str]) -> dict[str, str]:
    """run.sh's value of every option for its command line ``args``, and ``cmvn_default``,
    the --cmvn a system is not named after (run.sh's, or the feature type's conf's)."""
    settings = shell_assignments(RUN_SH, stop_at="parse_options.sh")
    pairs = _command_line(args)
    # The confs are chosen by --corpus (or --train-corpora's first) and --feat, before the rest.
    corpus, feat = settings["corpus"], settings["feat"]
    for name, value in pairs:
        if name == "corpus":
            corpus = value
        elif name == "train_corpora":
            corpus = value.split(" ")[0]
        elif name == "feat":
            feat = value
    for conf in (CONF_ROOT / "feat_defaults" / f"{feat}.conf", CONF_ROOT / "corpus" / f"{corpus}.conf"):
        if conf.is_file():
            settings.update(shell_assignments(conf))
        if conf.parent.name == "feat_defaults":
            settings["cmvn_default"] = settings["cmvn"]
    for name, value in pairs:
        if name not in settings or name == "cmvn_default":
            raise SerError(f"run.sh: unknown option --{name.replace('_', '-')}")
        settings[name] = value
    # The synth corpus's size is its conf's also where synth is not --corpus (that conf unread).
    synth_conf = shell_assignments(CONF_ROOT / "corpus" / "synth.conf")
    for name in ("synth_speakers", "synth_sentences"):
        settings[name] = settings[name] or synth_conf[name]
    return settings


def check_settings(feat: str = "", model: str = "", cmvn: str = "", protocol: str = "", baseline: str = "",
                   seeds: str = "") -> None:
    """Raises SerError naming every unknown setting ('' is not checked), so that a typo
    stops the recipe before stage 1 instead of failing (or computing features) stages later."""
    from ser.cmvn import CMVN_MODES  # here, not at the top: naming needs none of these
    from ser.features import FEATURE_TYPES
    from ser.folds import PROTOCOLS
    models = list_models()
    problems = []
    if feat and feat not in (*FEATURE_TYPES, "external"):
        problems.append(f"--feat {feat!r} is not a feature type; known: {', '.join((*FEATURE_TYPES, 'external'))}")
    for option, name in (("--model", model), ("--baseline", baseline)):
        if name and name not in models:
            problems.append(f"{option} {name!r} has no config {MODEL_CONF_DIR}/{name}.yaml; known: {', '.join(models)}")
    if cmvn and cmvn not in CMVN_MODES:
        problems.append(f"--cmvn {cmvn!r} is not a normalisation mode; known: {', '.join(CMVN_MODES)}")
    if protocol and protocol not in PROTOCOLS:
        problems.append(f"--protocol {protocol!r} is not a protocol; known: {', '.join(PROTOCOLS)}")
    if seeds and not all(s.isdigit() for s in seeds.split()):
        problems.append(f"--seeds {seeds!r}: expected whole numbers separated by spaces, e.g. '1 2 3'")
    if problems:
        raise SerError("; ".join(problems))


@dataclass(frozen=True)
class SystemDirs:
    """One system of a run (the main one or the baseline): what stages 3-6 are given."""
    feat: str
    feat_opts: str
    feats_scp: str
    feat_name: str      # <feat>[_<feat-opts tag>][_<scp hash>]
    feat_dir: str
    speed_perturb: str  # the factors of the training copies, '' for none
    aug_feat_dir: str   # their features ('' for none)
    cmvn: str
    model: str
    model_opts: str
    train_opts: str     # the feature type's, the corpus's, then --train-opts
    system: str
    exp: str            # exp/<data name>/<system>/<folds name>


@dataclass(frozen=True)
class RecipeDirs:
    """Every dir name of a run: the data and folds its systems share, then its systems,
    the main one first and the baseline (if any) second."""
    train_corpora: tuple[str, ...]
    test_corpus: str
    combined: bool                # several corpora, joined into one data dir
    corpus_data: dict[str, str]   # each corpus's own data dir
    synth_speakers: str           # the synth corpus's size, which its data dir's record names
    synth_sentences: str
    data: str
    data_name: str
    protocol: str
    fold_name: str
    folds: str
    systems: tuple[SystemDirs, ...]


def corpus_data_dir(corpus: str, emotion_variants: str) -> str:
    """The data dir of one corpus, named after its emotion variants ('<corpus>:<variant> ...')."""
    name = f"data/{corpus}"
    for variant in emotion_variants.split():
        if variant.split(":", 1)[0] == corpus:
            name += "_" + variant.split(":", 1)[1]
    return name


def _scp_hash(feats_scp: str) -> str:
    """External features are named after the real paths of the scp file(s) they come from."""
    paths = "".join(os.path.realpath(RECIPE_ROOT / f) + "\n" for f in feats_scp.split())
    return hashlib.sha1(paths.encode()).hexdigest()[:8]


def _system_dirs(s: dict[str, str], combined: bool, data: str, data_name: str, fold_name: str) -> SystemDirs:
    feat, model = s["feat"], s["model"]
    feat_name = feat + (f"_{options_tag(s['feat_opts'])}" if options_tag(s["feat_opts"]) else "")
    if feat == "external":
        feat_name += "_" + _scp_hash(s["feats_scp"])
    feat_dir = f"{data}/feats/{feat_name}"
    # The svm's features are one vector per utterance, which per-utterance normalisation would
    # zero: it uses the training part's statistics (then its own StandardScaler, fitted there too).
    cmvn = "train" if model == "svm" and s["cmvn"] == "utt" else s["cmvn"]
    # Speed perturbation lifted validation UAR on both corpora (local/tune/LOG.md); it needs
    # audio and one corpus, and the svm is the paper's baseline without it.
    speed_perturb = s["speed_perturb"]
    if speed_perturb == "auto":
        speed_perturb = s["auto_speed_factors"] or "auto"
        if combined or feat == "external" or model == "svm":
            speed_perturb = ""
    speed_perturb = " ".join(split_factors(speed_perturb))
    speed_tag = factors_tag(speed_perturb)  # names both the copies' features and the system
    system = f"{feat_name}_{model}"
    if cmvn != s["cmvn_default"] and model != "svm":
        system += f"_cmvn-{cmvn}"
    for tag in (speed_tag, options_tag(s["model_opts"]), options_tag(s["train_opts"]), s["exp_tag"]):
        if tag:
            system += f"_{tag}"
    return SystemDirs(feat=feat, feat_opts=s["feat_opts"], feats_scp=s["feats_scp"], feat_name=feat_name,
                      feat_dir=feat_dir, speed_perturb=speed_perturb,
                      aug_feat_dir=f"{feat_dir}_{speed_tag}" if speed_tag else "", cmvn=cmvn, model=model,
                      model_opts=s["model_opts"],
                      train_opts=f"{s['feat_train_opts']} {s['corpus_train_opts']} {s['train_opts']}",
                      system=system, exp=f"exp/{data_name}/{system}/{fold_name}")


def baseline_args(baseline: str) -> list[str]:
    """What the baseline system changes of run.sh's command line."""
    return ["--feat", BASELINE_FEAT, "--feat-opts", "", "--model", baseline, "--model-opts", "", "--train-opts", "",
            "--speed-perturb", "", "--exp-tag", "", "--baseline", "", "--feats-scp", ""]


def dir_names(args: Sequence[str]) -> RecipeDirs:
    """The dirs run.sh makes for its command line ``args`` (see the module docstring), after
    checking the settings, so that a misspelt one stops the run before any stage."""
    from ser.corpora import get_corpus

    s = recipe_settings(args)
    train_corpora = tuple((s["train_corpora"] or s["corpus"]).split())
    test_corpus = s["test_corpus"]
    protocol = s["protocol"]
    if test_corpus:
        protocol = protocol or "cross_corpus"
        if protocol != "cross_corpus":
            raise SerError(f"--test-corpus takes --protocol cross_corpus (got {protocol})")
    protocol = protocol or get_corpus(train_corpora[0]).default_protocol
    check_settings(feat=s["feat"], model=s["model"], baseline=s["baseline"], cmvn=s["cmvn"], protocol=protocol,
                   seeds=s["seeds"])
    if s["feat"] == "external" and not s["feats_scp"]:
        raise SerError("--feat external needs --feats-scp PATH (a Kaldi feats.scp)")
    for f in s["feats_scp"].split():
        if not (RECIPE_ROOT / f).is_file():
            raise SerError(f"--feats-scp {f}: no such file")

    # Several corpora (cross-corpus or multi-corpus): each is prepared (and its features made)
    # in its own data/<corpus>, then joined into data/<train>[_to_<test>].
    combined = bool(test_corpus) or len(train_corpora) > 1
    corpus_data = {c: corpus_data_dir(c, s["emotion_variants"]) for c in (*train_corpora, test_corpus) if c}
    if combined:
        data_name = "+".join(Path(corpus_data[c]).name for c in train_corpora)
        if test_corpus:
            data_name += "_to_" + Path(corpus_data[test_corpus]).name
        data = f"data/{data_name}"
    else:
        data = corpus_data[train_corpora[0]]
        data_name = Path(data).name
    fold_name = protocol
    if s["num_folds"]:
        fold_name += f"_k{s['num_folds']}"
    if s["fold_seed"] != "0":
        fold_name += f"_seed{s['fold_seed']}"
    if s["test_share"]:
        fold_name += f"_test{s['test_share']}"
    systems = [s]
    if s["baseline"] and s["model"] != s["baseline"]:
        systems.append(recipe_settings([*args, *baseline_args(s["baseline"])]))
    return RecipeDirs(train_corpora=train_corpora, test_corpus=test_corpus, combined=combined,
                      corpus_data=corpus_data, synth_speakers=s["synth_speakers"],
                      synth_sentences=s["synth_sentences"], data=data, data_name=data_name, protocol=protocol,
                      fold_name=fold_name, folds=f"{data}/folds/{fold_name}",
                      systems=tuple(_system_dirs(x, combined, data, data_name, fold_name) for x in systems))


def shell_assignments_of(dirs: RecipeDirs) -> str:
    """``dirs`` as bash assignments for run.sh to eval: plain variables for the shared dirs,
    the array ``systems`` of the system's associative arrays (main_system, baseline_system)."""
    q = shlex.quote
    lines = [f"train_list=({' '.join(map(q, dirs.train_corpora))})", f"test_corpus={q(dirs.test_corpus)}",
             f"combined={'true' if dirs.combined else 'false'}",
             "declare -A corpus_data=(" + " ".join(f"[{q(c)}]={q(d)}" for c, d in dirs.corpus_data.items()) + ")"]
    lines += [f"{name}={q(getattr(dirs, name))}" for name in ("synth_speakers", "synth_sentences", "data", "data_name",
                                                              "protocol", "fold_name", "folds")]
    roles = ("main", "baseline")[:len(dirs.systems)]
    lines.append(f"systems=({' '.join(roles)})")
    for role, system in zip(roles, dirs.systems):
        items = " ".join(f"[{name}]={q(value)}" for name, value in vars(system).items())
        lines.append(f"declare -A {role}_system=({items})")
    return "\n".join(lines) + "\n"
