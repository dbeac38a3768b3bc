"""The MLPerf Tiny keyword-spotting front end: 1 s of 16 kHz audio -> 49x10 MFCC.

This is the ``feature_type == "mfcc"`` branch of the reference training code
(mlcommons/tiny, benchmark/training/keyword_spotting/get_dataset.py), with its defaults from
kws_util.py: 30 ms Hann window (480 samples), 20 ms stride (320 samples), FFT length 512
(``fft_length=None``: the next power of two), magnitude spectrum, 40 mel bins from 20 Hz to
4 kHz, natural log with a 1e-6 floor, the first 10 DCT coefficients of
``tf.signal.mfccs_from_log_mel_spectrograms``. (16000 - 480) / 320 + 1 = 49 frames.

The reference scales each clip by its maximum (``wav / reduce_max(wav)``) before it adds
background noise; :func:`normalize` is that step, kept separate so the data script can place
its augmentation where the reference does.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 16_000  # 1 s clips
WINDOW_SAMPLES = 480  # 30 ms
STRIDE_SAMPLES = 320  # 20 ms
MEL_BINS = 40
LOWER_HZ = 20.0
UPPER_HZ = 4000.0
COEFFICIENTS = 10
FRAMES = (CLIP_SAMPLES - WINDOW_SAMPLES) // STRIDE_SAMPLES + 1  # 49
SHAPE = (FRAMES, COEFFICIENTS, 1)  # the DS-CNN input


def normalize(wave: np.ndarray) -> np.ndarray:
    """Scale a clip by its maximum, as the reference does (``wav / reduce_max(wav)``).

    A clip whose maximum is not positive (never the case for speech or noise) is scaled by its
    largest magnitude instead, so the result is always finite.
    """
    peak = float(np.max(wave))
    if peak <= 0.0:
        peak = float(np.max(np.abs(wave))) or 1.0
    return (wave / peak).astype(np.float32)


def mfcc(waves: np.ndarray, batch: int = 1024) -> np.ndarray:
    """MFCC features of clips ``(n, 16000)`` float in [-1, 1] -> ``(n, 49, 10, 1)`` float32."""
    import tensorflow as tf

    waves = np.asarray(waves, dtype=np.float32)
    if waves.ndim != 2 or waves.shape[1] != CLIP_SAMPLES:
        raise ValueError(f"expected clips of shape (n, {CLIP_SAMPLES}), received {waves.shape}")
    bins = 512 // 2 + 1
    mel = tf.signal.linear_to_mel_weight_matrix(MEL_BINS, bins, SAMPLE_RATE, LOWER_HZ, UPPER_HZ)
    parts = []
    for start in range(0, len(waves), batch):
        stft = tf.signal.stft(waves[start:start + batch], frame_length=WINDOW_SAMPLES,
                              frame_step=STRIDE_SAMPLES, fft_length=None,
                              window_fn=tf.signal.hann_window)
        spectrogram = tf.abs(stft)
        log_mel = tf.math.log(tf.tensordot(spectrogram, mel, 1) + 1e-6)
        coeffs = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :COEFFICIENTS]
        parts.append(coeffs.numpy())
    if not parts:
        return np.zeros((0, *SHAPE), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)[..., np.newaxis]
