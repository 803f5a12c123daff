"""A float PyTorch copy of the int8 CLIP ViT-B/16 image tower shipped as ONNX.

The released CLIP encoder (`clip_encoder.int8.onnx`, OpenAI CLIP ViT-B/16's image tower,
dynamically quantized) runs only in ONNX Runtime: it cannot be fine-tuned, and its integer
kernels have no GPU path. `rebuild_float_clip` dequantizes its weights into timm's ViT-B/16 so
that the same network can be trained and run on a GPU. The copy is not bit-exact (the int8
graph also quantizes activations on the fly), so it agrees with the graph closely, not exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from detector_core.errors import HumanmadeError

# Names inside the graph, as Hugging Face's CLIPVisionModelWithProjection exported them.
_VISION = "vision_model"
_LAYERS = 12
_WIDTH = 768


class ClipModelError(HumanmadeError):
    """The CLIP ONNX file is missing, unreadable, or not the expected ViT-B/16 image tower."""


class FloatClipVisionTower(nn.Module):
    """CLIP ViT-B/16's image tower in float, with the ONNX graph's two outputs.

    `forward(pixel_values)` takes (N, 3, 224, 224) CLIP-normalised pixels and returns
    `(image_embeds, hidden_states)`: the projected, unnormalised (N, 512) embedding, and the
    last block's (N, 197, 768) tokens before the final layer norm, as the graph gives them.
    """

    def __init__(self) -> None:
        super().__init__()
        import timm  # training-time dependency; scoring uses the ONNX graph

        vit = timm.create_model(
            "vit_base_patch16_clip_quickgelu_224",
            pretrained=False,
            num_classes=0,
            weight_init="skip",  # every weight is overwritten from the graph
        )
        # The graph's hidden states come before the final layer norm, which CLIP applies to
        # the class token only; taking it out of timm's forward_features keeps both outputs.
        self.post_layernorm = vit.norm
        vit.norm = nn.Identity()
        self.vit = vit
        self.projection = nn.Linear(_WIDTH, 512, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden_states = self.vit.forward_features(pixel_values)
        image_embeds = self.projection(self.post_layernorm(hidden_states[:, 0]))
        return image_embeds, hidden_states


def rebuild_float_clip(onnx_path: Path) -> FloatClipVisionTower:
    """The float tower with the int8 graph's weights, dequantized; in eval mode, on the CPU.

    Raises `ClipModelError` when the file is missing, is not ONNX, or lacks any weight of
    the ViT-B/16 image tower.
    """
    model = FloatClipVisionTower()
    try:
        hf = _dequantized_weights(Path(onnx_path))
        model.vit.load_state_dict(_timm_state(hf), strict=True)
        model.post_layernorm.load_state_dict(
            _take(hf, f"{_VISION}.post_layernorm", "weight", "bias")
        )
        model.projection.load_state_dict(_take(hf, "visual_projection", "weight"))
    except (KeyError, RuntimeError) as exc:
        raise ClipModelError(f"{onnx_path} is not CLIP ViT-B/16's image tower: {exc}") from exc
    return model.eval()


def _dequantized_weights(onnx_path: Path) -> dict[str, torch.Tensor]:
    """Every weight of the graph under its Hugging Face name, int8 ones turned back to float."""
    import onnx  # only needed to rebuild, never to score
    from onnx import numpy_helper

    if not onnx_path.is_file():
        raise ClipModelError(f"CLIP model not found: {onnx_path}")
    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for non-ONNX bytes
        raise ClipModelError(f"{onnx_path} is not a readable ONNX model: {exc}") from exc
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    # Float weights keep their module names; the int8 ones are anonymous "onnx::MatMul_*".
    weights = {
        name: torch.from_numpy(a.copy())
        for name, a in arrays.items()
        if not name.startswith("onnx::")
    }
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        # The quantizer names a node after the Linear it replaced, e.g.
        # "/vision_model/encoder/layers.3/mlp/fc1/MatMul_quant"; its own weights are anonymous.
        module = node.name.strip("/").removesuffix("/MatMul_quant").replace("/", ".")
        b, b_zero = node.input[1], node.input[3]
        scale = arrays[b.removesuffix("_quantized") + "_scale"]
        # B is (in, out) with one scale and zero point per output column; Linear wants (out, in).
        floats = (arrays[b].astype(np.float32) - arrays[b_zero].astype(np.float32)) * scale
        weights[f"{module}.weight"] = torch.from_numpy(np.ascontiguousarray(floats.T))
    return weights


def _take(weights: dict[str, torch.Tensor], prefix: str, *names: str) -> dict[str, torch.Tensor]:
    return {name: weights[f"{prefix}.{name}"] for name in names}


def _timm_state(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face CLIP vision names mapped onto timm's VisionTransformer (fused q, k, v)."""
    emb = f"{_VISION}.embeddings"
    state = {
        "cls_token": hf[f"{emb}.class_embedding"].reshape(1, 1, _WIDTH),
        "pos_embed": hf[f"{emb}.position_embedding.weight"].unsqueeze(0),
        "patch_embed.proj.weight": hf[f"{emb}.patch_embedding.weight"],
        "norm_pre.weight": hf[f"{_VISION}.pre_layrnorm.weight"],
        "norm_pre.bias": hf[f"{_VISION}.pre_layrnorm.bias"],
    }
    for i in range(_LAYERS):
        src, dst = f"{_VISION}.encoder.layers.{i}", f"blocks.{i}"
        attn = f"{src}.self_attn"
        for part in ("weight", "bias"):
            qkv = [hf[f"{attn}.{p}_proj.{part}"] for p in ("q", "k", "v")]
            state[f"{dst}.attn.qkv.{part}"] = torch.cat(qkv)
            state[f"{dst}.attn.proj.{part}"] = hf[f"{attn}.out_proj.{part}"]
            state[f"{dst}.norm1.{part}"] = hf[f"{src}.layer_norm1.{part}"]
            state[f"{dst}.norm2.{part}"] = hf[f"{src}.layer_norm2.{part}"]
            state[f"{dst}.mlp.fc1.{part}"] = hf[f"{src}.mlp.fc1.{part}"]
            state[f"{dst}.mlp.fc2.{part}"] = hf[f"{src}.mlp.fc2.{part}"]
    return state
