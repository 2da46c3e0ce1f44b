"""Two-branch image-text embedding (paper 5, convzoo.models.image_text): the three text modules against their
definitions (bag-of-words counts -> MLP, hashed n-grams of the words, a convolutional sentence encoder with a max
over the words), cosine scores of unit embeddings, a registered backbone as the (frozen) image CNN, and the
determinism / channels_last check the contract cannot run on an (images, tokens) pair."""

from __future__ import annotations

import pytest
import torch

import convzoo
from convzoo.errors import ConvzooError
from convzoo.models.image_text import BowTextEncoder, NgramTextEncoder, SSETextEncoder, cosine_scores
from convzoo.testing import randomise_bn

pytestmark = pytest.mark.paper(5)

# <bos> w w w <eos> <pad>: ids 0 pad, 1 bos, 2 eos, 3 unk
TOKENS = torch.tensor([[1, 5, 7, 5, 2, 0],
                       [1, 3, 9, 2, 0, 0]])


@pytest.mark.claim(paper=5, artefact="BowTextEncoder",
                   claim="the output is the MLP applied to the sentence's word-count vector (pad, bos, eos not counted)")
def test_bow_is_an_mlp_on_word_counts():
    torch.manual_seed(0)
    enc = BowTextEncoder(12, out_dim=4, hidden_dim=6).eval()
    counts = torch.zeros(2, 12)
    counts[0, 5], counts[0, 7] = 2, 1  # "w5 w7 w5"
    counts[1, 3], counts[1, 9] = 1, 1  # "<unk> w9"
    assert torch.equal(enc.bag(TOKENS), counts)
    want = enc.rest(counts @ enc.fc1.weight + enc.bias1)
    torch.testing.assert_close(enc(TOKENS), want, atol=1e-6, rtol=1e-6)
    assert torch.equal(enc(TOKENS[:, [0, 3, 2, 1, 4, 5]]), enc(TOKENS))  # word order does not matter
    assert torch.equal(enc(torch.cat([TOKENS, torch.zeros(2, 3, dtype=torch.long)], 1)), enc(TOKENS))  # padding
    binary = BowTextEncoder(12, out_dim=4, hidden_dim=6, binary=True).eval()
    binary.load_state_dict(enc.state_dict())
    assert torch.equal(binary.bag(TOKENS)[0, 5], torch.tensor(1.0))
    torch.testing.assert_close(binary(TOKENS), enc.rest(counts.clamp(max=1) @ enc.fc1.weight + enc.bias1), atol=1e-6,
                               rtol=1e-6)


@pytest.mark.claim(paper=5, artefact="NgramTextEncoder",
                   claim="hashed word n-grams: the unigrams, bigrams, trigrams and skip-bigrams of the words only (none "
                         "across <bos>/<eos>/<pad>), counted into buckets, then the MLP; word order matters")
def test_ngram_features():
    torch.manual_seed(0)
    enc = NgramTextEncoder(12, out_dim=4, hidden_dim=6, num_buckets=97).eval()
    ids, w = enc.features(TOKENS)
    # sentence 0 has 3 words: 3 unigrams + 2 bigrams + 1 trigram + 1 skip-bigram; sentence 1 has 2: 2 + 1 + 0 + 0
    assert w.sum(1).tolist() == [7, 3]
    assert bool((ids >= 0).all() and (ids < 97).all())
    counts = torch.zeros(2, 97)
    counts.scatter_add_(1, ids, w.float())
    torch.testing.assert_close(enc(TOKENS), enc.rest(counts @ enc.fc1.weight + enc.bias1), atol=1e-5, rtol=1e-5)
    swapped = TOKENS.clone()
    swapped[0, 1:4] = torch.tensor([7, 5, 5])  # the same words in another order
    assert not torch.allclose(enc(swapped)[0], enc(TOKENS)[0])
    assert torch.equal(enc(torch.cat([TOKENS, torch.zeros(2, 2, dtype=torch.long)], 1)), enc(TOKENS))
    no_skip = NgramTextEncoder(12, num_buckets=97, ngrams=(2,), skip=False)
    assert no_skip.features(TOKENS)[1].sum(1).tolist() == [5, 3]


@pytest.mark.claim(paper=5, artefact="SSETextEncoder",
                   claim="convolutional sentence encoder: Conv1d over word embeddings, max over the words only (padding "
                         "and sentence markers change nothing), then the MLP; word order matters")
def test_sse_max_over_words():
    torch.manual_seed(0)
    enc = SSETextEncoder(12, out_dim=4, word_dim=5, widths=(8,), hidden_dim=6).eval()
    with torch.no_grad():
        x = enc.embed(TOKENS[:1, 1:4])  # the three words alone, zero-padded by the conv as in the module
        h = enc.convs(x.transpose(1, 2)).amax(-1)
        torch.testing.assert_close(enc(TOKENS[:1]), enc.mlp(h), atol=1e-6, rtol=1e-6)
        assert torch.equal(enc(torch.cat([TOKENS, torch.zeros(2, 4, dtype=torch.long)], 1)), enc(TOKENS))
        swapped = TOKENS.clone()
        swapped[0, 1:4] = torch.tensor([7, 5, 5])
        assert not torch.allclose(enc(swapped)[0], enc(TOKENS)[0])
        empty = torch.tensor([[1, 2, 0]])  # a sentence without words: finite
        assert torch.isfinite(enc(empty)).all()


@pytest.mark.claim(paper=5, artefact="image_text_embedding",
                   claim="two branches into one joint space: unit image and sentence embeddings, scores = their cosines "
                         "(B_images, B_sentences); every text module and the fc7-like paper shape")
@pytest.mark.parametrize("name", ["image_text_bow", "image_text_ngram", "image_text_sse", "image_text_embedding"])
def test_joint_embedding_and_cosine_scores(name):
    torch.manual_seed(0)
    model = convzoo.create_model(name, vocab_size=12).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        img, txt = model(images), model(None, TOKENS)
        scores = model(images, TOKENS)
    assert img.shape == (3, model.embed_dim) and txt.shape == (2, model.embed_dim)
    torch.testing.assert_close(img.norm(dim=1), torch.ones(3)) and torch.testing.assert_close(txt.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(scores, cosine_scores(img, txt))
    torch.testing.assert_close(scores, torch.nn.functional.cosine_similarity(
        model.image(images)[:, None], model.text(TOKENS)[None], dim=-1), atol=1e-5, rtol=1e-5)
    assert torch.equal(model((images, TOKENS)), scores)


def test_image_branch_deterministic_and_channels_last():
    """The contract's determinism / channels_last check, on the image branch (the contract's input is a pair)."""
    torch.manual_seed(0)
    model = convzoo.create_model("image_text_sse", vocab_size=12).eval()
    randomise_bn(model, affine=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x, TOKENS), model(x, TOKENS)
        assert torch.equal(a, b)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last), TOKENS)
    torch.testing.assert_close(cl, a, atol=1e-5, rtol=1e-4)


def test_registered_backbone_frozen_and_errors():
    torch.manual_seed(0)
    model = convzoo.create_model("image_text_bow", vocab_size=12, image_backbone="simplenet_cifar_310k",
                                 freeze_image=True)
    assert not any(p.requires_grad for p in model.image.cnn.parameters())
    model.train()
    assert not model.image.cnn.training and model.image.mlp.training  # a frozen CNN keeps its BN statistics
    model(torch.randn(2, 3, 32, 32), TOKENS).sum().backward()
    assert model.image.mlp[0].weight.grad is not None
    with pytest.raises(ConvzooError, match="beyond the model's vocabulary of 12"):
        model(None, torch.tensor([[1, 40, 2]]))
    with pytest.raises(ConvzooError, match="text_encoder must be one of bow, ngram, sse"):
        convzoo.create_model("image_text_bow", text_encoder="lstm")


def _closed_form(widths, feat_dim, embed, hidden, text, vocab=1000):
    """Parameters of ImageTextEmbedding by hand: CNN (conv3x3 no bias + BN affine), fc7-like layer, image MLP
    (two Linears), text module."""
    cnn, c = 0, 3
    for w in widths:
        cnn += 9 * c * w + 2 * w
        c = w
    fc7 = (c * feat_dim + feat_dim) if feat_dim else 0
    d = feat_dim or c
    image_mlp = (d * hidden + hidden) + (hidden * embed + embed)
    if text == "bow":
        txt = vocab * hidden + hidden + hidden * embed + embed
    elif text == "ngram":
        txt = 2 ** 15 * hidden + hidden + hidden * embed + embed
    else:  # sse: embeddings 128, Conv1d 128 -> 256 (k3, bias), MLP 256 -> hidden -> embed
        txt = vocab * 128 + (128 * 256 * 3 + 256) + (256 * hidden + hidden) + (hidden * embed + embed)
    return cnn + fc7 + image_mlp + txt


@pytest.mark.claim(paper=5, artefact="image_text_embedding",
                   claim="parameter counts equal the closed form of the variant's widths at vocabulary 1,000 (card counts)")
def test_param_counts_closed_form():
    small = (32, 64, 128, 256)
    want = {"image_text_bow": _closed_form(small, 0, 256, 256, "bow"),
            "image_text_ngram": _closed_form(small, 0, 256, 256, "ngram"),
            "image_text_sse": _closed_form(small, 0, 256, 256, "sse"),
            "image_text_embedding": _closed_form((64, 128, 256, 512), 4096, 1024, 1024, "bow")}
    assert want == {"image_text_bow": 842_528, "image_text_ngram": 8_975_136, "image_text_sse": 878_624,
                    "image_text_embedding": 10_972_736}
    for name, n in want.items():
        assert convzoo.get_card(name).params == n
        with torch.device("meta"):
            assert sum(p.numel() for p in convzoo.create_model(name).parameters()) == n
