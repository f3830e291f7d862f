"""Model-bound filter inputs: per-clip cross-entropy from a classifier, latents = VAE posterior mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from classify.checkpoint import load_classifier, save_classifier
from classify.preprocess import ClipNormalization, clips_to_tensor
from classify.registry import build_classifier, build_kwargs
from filter.scoring import checkpoint_classifier_input, score_clips
from filter.semantic import classifier_losses
from generator.vae import VAEConfig, build_vae

N, FRAMES, SIZE, CLASSES = 5, 3, 16, 3


class TinyClassifier(nn.Module):
    """(B, 1, F, H, W) -> (B, classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3, 4)))


def to_input(clips: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(clips).float().div(255.0).unsqueeze(1)


@pytest.fixture
def clips() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(N, FRAMES, SIZE, SIZE), dtype=np.uint8)


def hand_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    # Alg. 1 line 6: -sum_c y_c log softmax(p(x))_c with a one-hot y
    log_probs = logits - logits.logsumexp(dim=1, keepdim=True)
    return (-log_probs[torch.arange(len(labels)), labels]).double().numpy()


def test_classifier_losses_equal_cross_entropy_by_hand(clips):
    torch.manual_seed(0)
    model = TinyClassifier()
    labels = torch.tensor([0, 2, 1, 1, 0])
    inputs = to_input(clips)
    losses = classifier_losses(model, inputs, labels, batch_size=2)
    with torch.no_grad():
        expected = hand_cross_entropy(model(inputs), labels)
    assert losses.shape == (N,) and losses.dtype == np.float64
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    assert model.training, "the classifier's train/eval mode is restored"


def test_classifier_losses_run_in_eval_mode():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(FRAMES * 4 * 4, CLASSES))
    inputs = torch.randn(4, 1, FRAMES, 4, 4)
    labels = torch.zeros(4, dtype=torch.long)
    first = classifier_losses(model, inputs, labels)
    np.testing.assert_array_equal(first, classifier_losses(model, inputs, labels))


def test_classifier_losses_name_bad_inputs():
    model = TinyClassifier()
    with pytest.raises(ValueError, match=r"'inputs' must have shape \(N, 1, F, H, W\)"):
        classifier_losses(model, torch.zeros(2, FRAMES, 4, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"'labels' must be class indices in \[0, 3\), got \[0, 3\]"):
        classifier_losses(model, torch.zeros(2, 1, FRAMES, 4, 4), torch.tensor([0, 3]))


def test_score_clips_uses_the_vae_posterior_mean_on_minus_one_to_one(clips):
    torch.manual_seed(0)
    vae = build_vae(VAEConfig.tiny()).eval()
    classifier = TinyClassifier()
    labels = np.array([0, 1, 2, 0, 1])
    loss, latents = score_clips(clips, labels, classifier, to_input, vae, batch_size=2, chunk_frames=4)
    frames = torch.from_numpy(clips).float().reshape(N * FRAMES, 1, SIZE, SIZE) / 127.5 - 1.0
    with torch.no_grad():
        mean = vae.encode(frames).latent_dist.mean * vae.config.scaling_factor
        expected_loss = hand_cross_entropy(classifier(to_input(clips)), torch.from_numpy(labels))
    assert latents.shape == (N, FRAMES, 4, 2, 2) and latents.dtype == np.float32
    np.testing.assert_allclose(latents, mean.reshape(N, FRAMES, 4, 2, 2).numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    _, again = score_clips(clips, labels, classifier, to_input, vae)
    np.testing.assert_array_equal(again, latents)


def test_score_clips_accepts_an_encoder_callable(clips):
    def encoder(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), FRAMES, 1, SIZE, SIZE).astype(np.float32) / 255.0

    _, latents = score_clips(clips, np.zeros(N, dtype=int), TinyClassifier(), to_input, encoder, batch_size=3)
    np.testing.assert_allclose(latents[:, :, 0], clips / 255.0, rtol=1e-6)


def test_score_clips_names_bad_arguments(clips):
    with pytest.raises(ValueError, match=r"'clips' must be uint8 \(N, F, H, W\), got float32"):
        score_clips(clips.astype(np.float32), np.zeros(N, dtype=int), TinyClassifier(), to_input, lambda b: b)
    with pytest.raises(ValueError, match=r"'labels' must be integer class indices .* got int64 \(4,\)"):
        score_clips(clips, np.zeros(4, dtype=np.int64), TinyClassifier(), to_input, lambda b: b)


def test_a_classify_checkpoint_scores_clips_with_its_own_input_transform(tmp_path, clips):
    torch.manual_seed(0)
    model = build_classifier("i3d", CLASSES, tiny=True)
    config = {
        "num_classes": CLASSES,
        "in_channels": 1,
        "build_kwargs": build_kwargs("i3d", tiny=True),
        "normalization": {"mean": 0.5, "std": 0.25},
        "size": 8,
    }
    save_classifier(tmp_path / "clf", model, "i3d", config)
    loaded, meta = load_classifier(tmp_path / "clf")
    labels = np.array([2, 0, 1, 2, 0])
    to_classifier = checkpoint_classifier_input(meta)
    loss, _ = score_clips(clips, labels, loaded, to_classifier, lambda b: b.astype(np.float32)[:, :, None])
    inputs = clips_to_tensor(clips, ClipNormalization(mean=0.5, std=0.25), size=8)
    assert to_classifier(clips).shape == (N, 1, FRAMES, 8, 8)
    with torch.no_grad():
        expected = hand_cross_entropy(model.eval()(inputs), torch.from_numpy(labels))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
