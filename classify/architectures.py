"""Sequence-classifier builders on maintained libraries (pytorchvideo, torchvision, MONAI).

Every builder returns a module taking `(B, in_channels, F, H, W)` float and returning logits
`(B, num_classes)`. Widths are settings so tests can build tiny versions of the same network.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import cast

from torch import nn

Triple = tuple[int, int, int]


def _conv3d_with_in_channels(conv: nn.Conv3d, in_channels: int) -> nn.Conv3d:
    """A fresh stem convolution with the same geometry as `conv` but `in_channels` inputs."""
    return nn.Conv3d(
        in_channels,
        conv.out_channels,
        kernel_size=cast(Triple, conv.kernel_size),
        stride=cast(Triple, conv.stride),
        padding=cast(str | Triple, conv.padding),
        dilation=cast(Triple, conv.dilation),
        groups=conv.groups,
        bias=conv.bias is not None,
    )


def build_i3d(
    num_classes: int, in_channels: int = 1, width: int = 64, depth: int = 50, dropout: float = 0.5
) -> nn.Module:
    """I3D as MMAction2 and PySlowFast train it: ResNet-50 inflated (5×7×7 stem, 3×1×1 conv_a
    inflated in alternating blocks) — the `i3d_r50` configuration of pytorchvideo's hub."""
    from pytorchvideo.models.resnet import create_resnet

    return create_resnet(
        input_channel=in_channels,
        model_depth=depth,
        model_num_class=num_classes,
        dropout_rate=dropout,
        stem_dim_out=width,
        stem_conv_kernel_size=(5, 7, 7),
        stage1_pool=nn.MaxPool3d,
        stage_conv_a_kernel_size=(
            (3, 1, 1),
            [(3, 1, 1), (1, 1, 1)],
            [(3, 1, 1), (1, 1, 1)],
            [(1, 1, 1), (3, 1, 1)],
        ),
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
    )


def build_csn(
    num_classes: int, in_channels: int = 1, width: int = 64, depth: int = 152, dropout: float = 0.0
) -> nn.Module:
    """Interaction-reduced channel-separated network (ir-CSN): bottlenecks whose 3×3×3 conv is
    depthwise (pytorchvideo `create_csn`, one channel per group). MMAction2's default depth is 152."""
    from pytorchvideo.models.csn import create_csn

    return create_csn(
        input_channel=in_channels,
        model_depth=depth,
        model_num_class=num_classes,
        dropout_rate=dropout,
        stem_dim_out=width,
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
    )


def build_r2plus1d(num_classes: int, in_channels: int = 1) -> nn.Module:
    """torchvision R(2+1)D-18 (fixed widths: torchvision exposes no width setting)."""
    from torchvision.models.video import r2plus1d_18

    model = r2plus1d_18(weights=None, num_classes=num_classes)
    model.stem[0] = _conv3d_with_in_channels(model.stem[0], in_channels)
    return model


def build_resnet3d(
    num_classes: int, in_channels: int = 1, widen_factor: float = 1.0, layers: Sequence[int] = (2, 2, 2, 2)
) -> nn.Module:
    """MONAI 3D ResNet (basic blocks; ResNet-18 by default), spatial stride 2 in the stem only
    over H and W so short clips keep their frames."""
    from monai.networks.nets import ResNet

    return ResNet(
        block="basic",
        layers=list(layers),
        block_inplanes=[64, 128, 256, 512],
        spatial_dims=3,
        n_input_channels=in_channels,
        conv1_t_size=(3, 7, 7),  # type: ignore[arg-type]  # MONAI annotates a per-axis tuple as tuple[int]
        conv1_t_stride=(1, 2, 2),  # type: ignore[arg-type]
        widen_factor=widen_factor,
        num_classes=num_classes,
    )


def _mvit_v2_blocks(width: int, depths: Sequence[int]) -> list:
    """MViTv2 multiscale blocks: each stage doubles channels and heads and halves H, W in its
    first block; key/value pooling stride starts at 8 and halves per stage. width 96 with
    depths (1, 2, 11, 2) is torchvision's MViTv2-S setting (which `mvit_v2_s` does not let
    one build at another input size)."""
    from torchvision.models.video.mvit import MSBlockConfig

    kernel = [3, 3, 3]
    blocks = []
    for stage, depth in enumerate(depths):
        kv_stride = max(8 // 2**stage, 1)
        for index in range(depth):
            downsamples = stage > 0 and index == 0
            blocks.append(
                MSBlockConfig(
                    num_heads=2**stage,
                    input_channels=width * 2 ** (stage - 1 if downsamples else stage),
                    output_channels=width * 2**stage,
                    kernel_q=kernel,
                    kernel_kv=kernel,
                    stride_q=[1, 2, 2] if downsamples else [1, 1, 1],
                    stride_kv=[1, kv_stride, kv_stride],
                )
            )
    return blocks


def build_mvit_v2_s(
    num_classes: int,
    in_channels: int = 1,
    frames: int = 16,
    size: int = 224,
    width: int = 96,
    depths: Sequence[int] = (1, 2, 11, 2),
    stochastic_depth_prob: float = 0.2,
) -> nn.Module:
    """torchvision MViTv2-S; its positional tables fix the input to `frames`×`size`×`size`."""
    from torchvision.models.video.mvit import MViT

    model = MViT(
        spatial_size=(size, size),
        temporal_size=frames,
        block_setting=_mvit_v2_blocks(width, depths),
        residual_pool=True,
        residual_with_cls_embed=False,
        rel_pos_embed=True,
        proj_after_attn=True,
        stochastic_depth_prob=stochastic_depth_prob,
        num_classes=num_classes,
    )
    model.conv_proj = _conv3d_with_in_channels(model.conv_proj, in_channels)
    return model


def build_swin3d_t(
    num_classes: int,
    in_channels: int = 1,
    embed_dim: int = 96,
    depths: Sequence[int] = (2, 2, 6, 2),
    num_heads: Sequence[int] = (3, 6, 12, 24),
    window_size: Sequence[int] = (8, 7, 7),
    stochastic_depth_prob: float = 0.1,
) -> nn.Module:
    """torchvision Video Swin-T (shifted-window attention pads any input size)."""
    from torchvision.models.video.swin_transformer import PatchEmbed3d, SwinTransformer3d

    return SwinTransformer3d(
        patch_size=[2, 4, 4],
        embed_dim=embed_dim,
        depths=list(depths),
        num_heads=list(num_heads),
        window_size=list(window_size),
        stochastic_depth_prob=stochastic_depth_prob,
        num_classes=num_classes,
        patch_embed=partial(PatchEmbed3d, in_channels=in_channels),
    )
