"""Synthesise a 12-class keyword-spotting data set with espeak-ng and write it as kws.npz.

The classes and their order are those of MLPerf Tiny KWS (Speech Commands v2 as TFDS labels it):
down, go, left, no, off, on, right, stop, up, yes, silence, unknown. "unknown" is the other 25
words of Speech Commands v2, "silence" is generated background noise.

A voice is an espeak-ng accent with a ``+variant`` (``en-gb-scotland+f3``); every voice says
every keyword ``repeats`` times and some unknown words, each utterance with its own speed,
pitch and amplitude. The split is by voice variant: the variants of the test voices never occur
in training, in any accent. Each clip is then augmented (a room, a low-pass, a time shift, a
gain, background noise: white, pink, brown, mains hum or band noise, all generated), cut to 1 s
at 16 kHz, and turned into 49x10 MFCC features by the MLPerf Tiny front end (features.py).

Everything is deterministic from ``--seed`` (given the espeak-ng version, which is part of the
cache key): the result is cached under ``build/kws/cache/`` (or ``--cache``) by a key over every
parameter, and a second run only copies it to ``--out``.

usage: python examples/kws/make_data.py [--out build/kws/kws.npz] [--seed 0] [--cache DIR]
                                        [--workers 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from features import CLIP_SAMPLES, SAMPLE_RATE, mfcc, normalize  # noqa: E402

FORMAT_VERSION = 1  # bump when the synthesis or augmentation changes
KEYWORDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")
CLASSES = (*KEYWORDS, "silence", "unknown")
SILENCE = CLASSES.index("silence")
UNKNOWN = CLASSES.index("unknown")
# The 25 words of Speech Commands v2 that are not keywords.
UNKNOWN_WORDS = ("backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward",
                 "four", "happy", "house", "learn", "marvin", "nine", "one", "seven", "sheila",
                 "six", "three", "tree", "two", "visual", "wow", "zero")
# English accents of espeak-ng 1.51, and two Germanic languages reading the English spelling
# (strongly accented English: "stop" -> "shtop", "up" -> "oop").
ACCENTS = ("en-us", "en-us-nyc", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029", "de", "nl")
# The voice variants of espeak-ng 1.51 ("" = the accent's own voice). Left out: "Mr serious"
# (a space in its name) and caleb and klatt6, which sound exactly like klatt.
VARIANTS = ("", "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "antonio", "aunty",
            "belinda", "benjamin", "boris", "david", "Demonic", "Denis", "Diogo", "ed",
            "edward", "edward2", "Gene", "Gene2", "gustave", "announcer", "Henrique", "Hugo",
            "iven", "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "Lee", "linda",
            "marcelo", "Marco", "Mario", "max", "Michael", "michel", "miguel", "Mike", "Nguyen",
            "pablo", "paul", "pedro", "quincy", "RicishayMax", "RicishayMax2", "RicishayMax3",
            "rob", "robert", "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5",
            "robosoft6", "robosoft7", "robosoft8", "steph", "steph2", "steph3", "Storm",
            "Tweaky", "UniRobot", "zac", "anika", "anikaRobot", "AnxiousAndy", "fast", "f1",
            "f2", "f3", "f4", "f5", "whisperf", "grandpa", "grandma", "klatt", "klatt2",
            "klatt3", "klatt4", "klatt5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
            "norbert", "sandro", "shelby", "travis", "victor", "whisper", "croak")
NOISES = ("white", "pink", "brown", "hum", "band")
ESPEAK_RATE = 22_050
BREAK_MS = 700  # silence between the words of one espeak-ng run
MIN_BREAK_SAMPLES = int(0.3 * ESPEAK_RATE)  # a longer silence separates two words
SILENT_LEVEL = 3  # int16: espeak-ng's breaks are below it, speech is far above

log = logging.getLogger("make_data")


class ToolMissing(RuntimeError):
    """espeak-ng is not installed (exit 3, as tinyprune's missing-tool errors)."""


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Augment:
    """Per-clip augmentation, drawn independently for every clip (train and test alike)."""

    room_probability: float = 0.5
    rt60_s: tuple[float, float] = (0.1, 0.5)  # reverberation time of the synthetic room
    wet: tuple[float, float] = (0.05, 0.35)  # reverberant energy relative to the direct sound
    lowpass_probability: float = 0.3
    lowpass_hz: tuple[float, float] = (2500.0, 6000.0)
    gain: tuple[float, float] = (0.3, 1.0)  # after the reference's peak normalisation
    noise_probability: float = 0.8  # the reference's background_frequency
    noise_volume: tuple[float, float] = (0.0, 0.1)  # the reference's background_volume range


@dataclass(frozen=True)
class DataConfig:
    """Everything the data set depends on (all of it goes into the cache key).

    Prosody is drawn twice: per voice (espeak-ng's base speed in words per minute, base pitch
    0-99 and amplitude 0-200) and per word (SSML rate and pitch relative to the voice's).
    """

    seed: int = 0
    accents: tuple[str, ...] = ACCENTS
    variants: tuple[str, ...] = VARIANTS
    keywords: tuple[str, ...] = KEYWORDS
    unknown_words: tuple[str, ...] = UNKNOWN_WORDS
    repeats: int = 2  # utterances of every keyword per voice
    unknown_per_voice: int = 3
    silence_per_voice: int = 2
    test_fraction: float = 0.2  # of the variants
    speed_wpm: tuple[int, int] = (140, 200)
    pitch: tuple[int, int] = (20, 80)
    amplitude: tuple[int, int] = (60, 160)
    word_rate_percent: tuple[int, int] = (75, 125)
    word_pitch_percent: tuple[int, int] = (-25, 25)
    augment: Augment = field(default_factory=Augment)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.keywords) - set(KEYWORDS))
        if unknown:
            raise ValueError(f"expected keywords among {KEYWORDS}, received: {unknown}")
        if len(self.variants) < 2:
            raise ValueError("expected at least 2 variants (one for training, one for test)")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"expected test_fraction in (0, 1), received {self.test_fraction}")

    def key(self, espeak_version: str) -> str:
        """The cache key: a hash of every parameter, the format and the espeak-ng version."""
        text = json.dumps({"config": asdict(self), "format": FORMAT_VERSION,
                           "espeak": espeak_version}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Clip:
    """One clip to make: a word with its prosody relative to the voice (word "" = silence)."""

    index: int  # position in the whole plan: seeds the clip's augmentation
    label: int
    word: str
    rate: int  # SSML rate, percent of the voice's speed
    pitch: int  # SSML pitch change, percent


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice and the clips it makes."""

    name: str  # the espeak-ng -v argument, e.g. "en-gb-scotland+f3"
    variant: str
    test: bool
    speed: int
    pitch: int
    amplitude: int
    clips: tuple[Clip, ...]

    @property
    def spoken(self) -> tuple[Clip, ...]:
        return tuple(c for c in self.clips if c.word)


# ---------------------------------------------------------------- the plan


def test_variants(config: DataConfig) -> frozenset[str]:
    """The variants held out for test, drawn from the seed."""
    rng = np.random.default_rng([config.seed, 1])
    order = rng.permutation(len(config.variants))
    n = min(max(1, round(config.test_fraction * len(config.variants))), len(config.variants) - 1)
    return frozenset(config.variants[i] for i in order[:n])


def voice_name(accent: str, variant: str) -> str:
    return f"{accent}+{variant}" if variant else accent


def _voice_words(config: DataConfig, rng: np.random.Generator) -> list[tuple[int, str]]:
    words = [(KEYWORDS.index(w), w) for w in config.keywords for _ in range(config.repeats)]
    if config.unknown_words and config.unknown_per_voice:
        picks = rng.choice(len(config.unknown_words), config.unknown_per_voice,
                           replace=config.unknown_per_voice > len(config.unknown_words))
        words += [(UNKNOWN, config.unknown_words[i]) for i in picks]
    words += [(SILENCE, "")] * config.silence_per_voice
    return [words[i] for i in rng.permutation(len(words))]


def _draw(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1], endpoint=True))


def plan(config: DataConfig) -> list[Voice]:
    """Every voice and clip of the data set, in a fixed order (accents, variants, words)."""
    held_out = test_variants(config)
    voices: list[Voice] = []
    index = 0
    for a, accent in enumerate(config.accents):
        for v, variant in enumerate(config.variants):
            rng = np.random.default_rng([config.seed, 2, a, v])
            speed, pitch = _draw(rng, config.speed_wpm), _draw(rng, config.pitch)
            amplitude = _draw(rng, config.amplitude)
            clips = []
            for label, word in _voice_words(config, rng):
                clips.append(Clip(index, label, word, _draw(rng, config.word_rate_percent),
                                  _draw(rng, config.word_pitch_percent)))
                index += 1
            voices.append(Voice(voice_name(accent, variant), variant, variant in held_out,
                                speed, pitch, amplitude, tuple(clips)))
    return voices


# ---------------------------------------------------------------- espeak-ng


def espeak_version() -> str:
    """The installed espeak-ng's version line; raises ToolMissing when it is absent."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ToolMissing("espeak-ng not found: install it with `apt-get install espeak-ng` "
                          "(`make setup` does it)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split()[:4])


def _wav_samples(data: bytes, what: str) -> np.ndarray:
    """The int16 samples of espeak-ng's streamed WAV (its header sizes are not filled in)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError(f"espeak-ng gave no WAV for {what}")
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"fmt ":
            rate = int.from_bytes(data[pos + 12:pos + 16], "little")
            if rate != ESPEAK_RATE:
                raise RuntimeError(f"espeak-ng sample rate {rate}, expected {ESPEAK_RATE}")
        if chunk == b"data":
            body = data[pos + 8:]
            return np.frombuffer(body[:len(body) // 2 * 2], dtype="<i2")
        pos += 8 + size
    raise RuntimeError(f"espeak-ng WAV without data for {what}")


def _espeak(voice: Voice, clips: Sequence[Clip]) -> np.ndarray:
    """One espeak-ng run saying ``clips`` (SSML, 700 ms breaks between words) -> int16."""
    words = "".join(f'<prosody rate="{c.rate}%" pitch="{c.pitch:+d}%">{c.word}</prosody>'
                    f'<break time="{BREAK_MS}ms"/>' for c in clips)
    cmd = ["espeak-ng", "-m", "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch),
           "-a", str(voice.amplitude), "--stdout", f"<speak>{words}</speak>"]
    run = subprocess.run(cmd, capture_output=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"espeak-ng -v {voice.name} failed: "
                           f"{run.stderr.decode(errors='replace').strip()}")
    return _wav_samples(run.stdout, voice.name)


def split_words(samples: np.ndarray, count: int) -> list[np.ndarray] | None:
    """Cut a run of words at the breaks (silences of 300 ms or more); None unless ``count``."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENT_LEVEL)
    if len(loud) == 0:
        return None
    gaps = np.flatnonzero(np.diff(loud) > MIN_BREAK_SAMPLES)
    starts = np.concatenate([[loud[0]], loud[gaps + 1]])
    ends = np.concatenate([loud[gaps], [loud[-1]]]) + 1
    if len(starts) != count:
        return None
    return [samples[s:e] for s, e in zip(starts, ends, strict=True)]


def speak(voice: Voice) -> dict[int, np.ndarray]:
    """The audio (float, 22.05 kHz, trimmed) of every spoken clip of a voice, by clip index.

    One espeak-ng run per voice; should the cut not give one piece per word, each word is said
    on its own instead (same prosody).
    """
    spoken = voice.spoken
    if not spoken:
        return {}
    pieces = split_words(_espeak(voice, spoken), len(spoken))
    if pieces is None:
        log.debug("%s: words not separable, one run per word", voice.name)
        pieces = [trim_silence(_espeak(voice, [c])) for c in spoken]
    return {c.index: p.astype(np.float64) / 32768.0 for c, p in zip(spoken, pieces, strict=True)}


def trim_silence(samples: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENT_LEVEL)
    return samples[loud[0]:loud[-1] + 1] if len(loud) else samples


# ---------------------------------------------------------------- signal helpers


def resample(x: np.ndarray) -> np.ndarray:
    """22.05 kHz -> 16 kHz, band-limited by the FFT (441 -> 320 per block; padded with silence,
    so the FFT's wrap-around adds nothing)."""
    blocks = -(-(len(x) + 512) // 441)
    spectrum = np.fft.rfft(x, 441 * blocks)[: 160 * blocks + 1]
    return np.fft.irfft(spectrum, 320 * blocks)[: len(x) * 320 // 441] * (320 / 441)


def fft_filter(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Apply a real frequency response ``gain`` (rfft bins of ``len(x)``)."""
    return np.fft.irfft(np.fft.rfft(x) * gain, len(x))


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Background noise of a kind, peak-normalised to 1."""
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    white = rng.standard_normal(n)
    if kind == "white":
        out = white
    elif kind in ("pink", "brown"):
        power = 0.5 if kind == "pink" else 1.0
        out = fft_filter(white, np.maximum(freqs, 20.0) ** -power)
    elif kind == "hum":
        base = 50.0 if rng.random() < 0.5 else 60.0  # mains and 7 harmonics, random phases
        spectrum = np.zeros(len(freqs), dtype=complex)
        for h in range(1, 9):
            spectrum[round(base * h * n / SAMPLE_RATE)] = np.exp(2j * np.pi * rng.random()) / h
        out = np.fft.irfft(spectrum, n) * n / 2 + 0.05 * white
    else:  # band: white noise through a random band (fans, traffic, water)
        centre, width = rng.uniform(150.0, 4000.0), rng.uniform(0.3, 1.5)
        out = fft_filter(white, np.exp(-0.5 * (np.log2(np.maximum(freqs, 1.0) / centre)
                                               / width) ** 2))
    return out / max(float(np.max(np.abs(out))), 1e-9)


def room(x: np.ndarray, rt60: float, wet: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room: the direct path and an exponentially decaying tail."""
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(1, length) / SAMPLE_RATE
    tail = rng.standard_normal(length - 1) * np.exp(-6.9 * t / rt60)
    tail *= np.sqrt(wet / max(float(np.sum(tail ** 2)), 1e-12))
    ir = np.concatenate([[1.0], tail])
    size = 1 << int(np.ceil(np.log2(len(x) + length)))
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]


# ---------------------------------------------------------------- one clip


def place(word: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put a word at a random position in a 1 s clip (the time shift; a longer word is cut)."""
    word = word[:CLIP_SAMPLES]
    out = np.zeros(CLIP_SAMPLES)
    start = int(rng.integers(0, CLIP_SAMPLES - len(word), endpoint=True))
    out[start:start + len(word)] = word
    return out


def foreground(clip: Clip, audio: np.ndarray | None, aug: Augment,
               rng: np.random.Generator) -> np.ndarray:
    """The clip before the reference's normalisation: a placed, coloured word or a noise."""
    if audio is None:  # silence
        kinds = rng.choice(len(NOISES), 2)
        mix = rng.uniform(0.0, 1.0)
        return (noise(NOISES[kinds[0]], CLIP_SAMPLES, rng)
                + mix * noise(NOISES[kinds[1]], CLIP_SAMPLES, rng))
    pad = np.zeros(160)
    x = place(np.concatenate([pad, resample(audio), pad]), rng)
    if rng.random() < aug.room_probability:
        x = room(x, rng.uniform(*aug.rt60_s), rng.uniform(*aug.wet), rng)
    if rng.random() < aug.lowpass_probability:
        cutoff = rng.uniform(*aug.lowpass_hz)
        freqs = np.fft.rfftfreq(CLIP_SAMPLES, 1.0 / SAMPLE_RATE)
        x = fft_filter(x, 1.0 / np.sqrt(1.0 + (freqs / cutoff) ** 8))
    return x


def render(clip: Clip, audio: np.ndarray | None, config: DataConfig) -> np.ndarray:
    """The finished 1 s clip: as the reference, normalised by its maximum, then (our gain and)
    background noise, clipped to [-1, 1]."""
    aug = config.augment
    rng = np.random.default_rng([config.seed, 3, clip.index])
    x = normalize(foreground(clip, audio, aug, rng)).astype(np.float64) * rng.uniform(*aug.gain)
    if rng.random() < aug.noise_probability:
        kind = NOISES[int(rng.integers(len(NOISES)))]
        x = x + rng.uniform(*aug.noise_volume) * noise(kind, CLIP_SAMPLES, rng)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def voice_clips(voice: Voice, config: DataConfig) -> np.ndarray:
    """All clips of one voice, ``(len(voice.clips), 16000)`` float32 (a worker's task)."""
    audio = speak(voice)
    return np.stack([render(c, audio.get(c.index), config) for c in voice.clips])


# ---------------------------------------------------------------- the data set


def _all_clips(voices: Sequence[Voice], config: DataConfig, workers: int) -> np.ndarray:
    if workers <= 1:
        return np.concatenate([voice_clips(v, config) for v in voices])
    context = multiprocessing.get_context("spawn")  # the caller may have TensorFlow threads
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return np.concatenate(list(pool.map(voice_clips, voices, [config] * len(voices),
                                            chunksize=4)))


def synthesise(config: DataConfig, workers: int = 2) -> dict[str, np.ndarray]:
    """Make the data set: ``x_train, y_train, x_test, y_test`` (MFCC, class indices) plus
    ``voice_train, voice_test`` (the espeak-ng voice of every sample) and ``classes``.

    The result does not depend on ``workers``: every clip draws from its own seeded generator.
    """
    espeak_version()
    voices = plan(config)
    start = time.monotonic()
    waves = _all_clips(voices, config, workers)
    log.info("synthesised %d clips of %d voices in %.0f s", len(waves), len(voices),
             time.monotonic() - start)
    features = mfcc(waves)
    labels = np.array([c.label for v in voices for c in v.clips], dtype=np.int64)
    names = np.array([v.name for v in voices for _ in v.clips])
    test = np.array([v.test for v in voices for _ in v.clips])
    out: dict[str, np.ndarray] = {}
    for split, flag in (("train", False), ("test", True)):
        idx = np.flatnonzero(test == flag)
        idx = idx[np.random.default_rng([config.seed, 4, int(flag)]).permutation(len(idx))]
        out[f"x_{split}"] = features[idx]
        out[f"y_{split}"] = labels[idx]
        out[f"voice_{split}"] = names[idx]
    out["classes"] = np.array(CLASSES)
    return out


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz whose bytes depend only on the arrays (fixed zip timestamps), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def cached_dataset(config: DataConfig, cache: Path, workers: int = 2) -> Path:
    """The cached .npz of ``config`` (made first when missing)."""
    path = cache / f"kws-{config.key(espeak_version())}.npz"
    if path.is_file():
        log.info("cached: %s", path)
        return path
    save_npz(path, synthesise(config, workers))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def publish(cached: Path, out: Path) -> None:
    """Copy the cached file to ``out``, atomically; an identical ``out`` is left untouched (its
    timestamp too, so make sees nothing new)."""
    if out.resolve() == cached.resolve():
        return
    if out.is_file() and out.stat().st_size == cached.stat().st_size \
            and _sha256(out) == _sha256(cached):
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.copyfile(cached, tmp)
    os.replace(tmp, out)


def describe(arrays: dict[str, np.ndarray]) -> str:
    parts = []
    for split in ("train", "test"):
        counts = np.bincount(arrays[f"y_{split}"], minlength=len(CLASSES))
        parts.append(f"{split}: {len(arrays[f'y_{split}'])} clips, "
                     f"{len(set(arrays[f'voice_{split}'].tolist()))} voices, per class "
                     f"{counts.tolist()}")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "kws" / "kws.npz")
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "kws" / "cache")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="parallel espeak-ng processes (default 2)")
    ap.add_argument("--repeats", type=int, default=DataConfig.repeats,
                    help="utterances of every keyword per voice")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    config = DataConfig(seed=args.seed, repeats=args.repeats)
    try:
        path = cached_dataset(config, args.cache, args.workers)
    except ToolMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    publish(path, args.out)
    with np.load(args.out) as npz:
        log.info("wrote %s (%s)", args.out, describe(dict(npz)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
