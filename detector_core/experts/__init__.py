"""The experts: networks that each turn pixels into patch logits.

Every expert answers the same question in its own way, with one shared interface: given an
image's RGB uint8 pixels, the logits of the patches it looked at (where they lie in the
image, and a map of logits for each), and the image's logit (their mean). `fusion` weighs
the experts' image logits into one.

- `trace` — small CNNs on native-resolution tiles: decoder and upsampling traces.
- `clip` — CLIP ViT-B/16 tokens with a linear head: what generated content looks like.
- `clip_float` — a float PyTorch rebuild of the int8 CLIP graph, for fine-tuning and GPUs
  (training side only; scoring runs the int8 graph).
"""
