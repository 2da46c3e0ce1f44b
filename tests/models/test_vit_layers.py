"""The shared Transformer pieces (convzoo.layers.vit) against timm's: same keys, same outputs."""

import torch
from timm.layers import resample_abs_pos_embed as timm_resample
from timm.models.vision_transformer import Block as TimmBlock

from convzoo.layers.vit import Block, resample_abs_pos_embed


def test_block_equals_timms_with_its_weights():
    torch.manual_seed(0)
    ref, ours = TimmBlock(64, 4, qkv_bias=True).eval(), Block(64, 4, qkv_bias=True).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)  # timm's key names
    x = torch.randn(2, 10, 64)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_pos_embed_resampling_equals_timms():
    pos = torch.randn(1, 1 + 49, 8)
    for size in [(5, 6), (9, 9), (7, 7)]:
        torch.testing.assert_close(resample_abs_pos_embed(pos, size, num_prefix_tokens=1),
                                   timm_resample(pos, size, num_prefix_tokens=1))
