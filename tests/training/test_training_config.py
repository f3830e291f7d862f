"""Run configs: Table 1 defaults, YAML/TOML files, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import (
    ClassifierStageConfig,
    ConfigError,
    ImageStageConfig,
    SequenceStageConfig,
    VAEStageConfig,
    build_section,
    load_config,
    parse_config,
)

DATA = {"data_dir": "data/demo-dataset"}


def test_defaults_are_table_1() -> None:
    image = parse_config(
        {"stage": "image", "output_dir": "o", "data": DATA, "vae_dir": "v", "text_encoder_dir": "t"}
    )
    assert isinstance(image, ImageStageConfig)
    assert image.optimizer.lr == 1e-4 and image.optimizer.schedule == "cosine"
    assert image.optimizer.warmup_steps == 500
    assert image.noise.num_train_timesteps == 1000
    assert (image.noise.beta_start, image.noise.beta_end) == (0.00085, 0.012)
    assert image.noise.beta_schedule == "scaled_linear" and image.noise.prediction_type == "epsilon"
    assert image.epochs == 200 and image.batch_size == 64
    sequence = parse_config({"stage": "sequence", "output_dir": "o", "data": DATA, "image_stage_dir": "i"})
    assert isinstance(sequence, SequenceStageConfig)
    assert sequence.batch_size == 8 and sequence.pathway_downsample == 8
    vae = parse_config({"stage": "vae", "output_dir": "o", "data": DATA})
    assert isinstance(vae, VAEStageConfig) and vae.kl_weight == 1e-6 and vae.perceptual_weights_path is None
    classifier = parse_config({"stage": "classifier", "output_dir": "o", "data": DATA})
    assert isinstance(classifier, ClassifierStageConfig)
    assert (classifier.epochs, classifier.batch_size, classifier.lr) == (100, 8, 1e-4)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"learning_rate": 1e-3}, "learning_rate"),
        ({"optimizer": {"lrr": 1e-3}}, "optimizer.lrr"),
        ({"data": {**DATA, "resolutoin": 64}}, "data.resolutoin"),
        ({"batch_size": 0}, "batch_size"),
        ({"optimizer": {"schedule": "exponential"}}, "optimizer.schedule"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
    ],
)
def test_bad_settings_name_the_field(patch: dict, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"stage": "vae", "output_dir": "o", "data": DATA, **patch})
    assert str(error.value).startswith(f"{field}:")


def test_stage_is_checked_against_the_command() -> None:
    with pytest.raises(ConfigError, match="stage: the file declares 'vae' but `train image` was run"):
        parse_config({"stage": "vae", "output_dir": "o", "data": DATA}, stage="image")
    with pytest.raises(ConfigError, match="stage: missing"):
        parse_config({"output_dir": "o", "data": DATA})


def test_yaml_and_toml_files_load_with_paths_from_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text(
        "stage: vae\noutput_dir: runs/vae\nmax_steps: 7\ndata:\n  data_dir: data/demo\n  resolution: 64\n"
    )
    (tmp_path / "run.toml").write_text(
        'output_dir = "runs/vae"\nmax_steps = 7\n[data]\ndata_dir = "data/demo"\nresolution = 64\n'
    )
    from_yaml = load_config(tmp_path / "run.yaml", stage="vae")
    from_toml = load_config(tmp_path / "run.toml", stage="vae")
    assert from_yaml == from_toml
    assert from_yaml.output_dir == tmp_path / "runs" / "vae"
    assert from_yaml.data.data_dir == tmp_path / "data" / "demo"
    assert from_yaml.max_steps == 7 and from_yaml.data.resolution == 64
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="use .yaml, .yml, .toml or .json"):
        (tmp_path / "run.ini").write_text("x")
        load_config(tmp_path / "run.ini")


def test_model_sections_reject_unknown_fields() -> None:
    from generator.vae import VAEConfig

    with pytest.raises(
        ConfigError, match=r"^vae\.block_channels: unknown field \(known: .*block_out_channels"
    ):
        build_section(VAEConfig, {"block_channels": [8, 8]}, "vae")
    with pytest.raises(ConfigError, match="^vae: block_out_channels entry 6 is not divisible"):
        build_section(VAEConfig, {"block_out_channels": [6, 8], "norm_num_groups": 4}, "vae")
    built = build_section(VAEConfig, {"block_out_channels": [8, 16], "norm_num_groups": 4}, "vae")
    assert built.block_out_channels == (8, 16)
