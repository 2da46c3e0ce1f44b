"""LRCN captioning (paper 42, Sec. 5): counts, decoding proofs, metrics, the task and its recipes."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import pytest
import torch
from torch import nn

from convzoo.data.registry import DataInfo
from convzoo.methods import caption_decoding as D
from convzoo.models import lrcn_caption as L
from convzoo.registry import count_params
from convzoo.tasks import build_task

VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "red", "blue", "green", "square", "circle", "cross", "big"]


def _tiny(vocab: int = len(VOCAB), max_len: int = 6, seed: int = 0, **kw) -> L.LRCNCaptioner:
    """A small captioner whose weights are spread (N(0, 0.5)) so that word probabilities differ clearly."""
    torch.manual_seed(seed)
    cfg = {"vocab_size": vocab, "encoder": "small", "encoder_kwargs": {"widths": (8,)}, "image_dim": 8,
           "embed_dim": 8, "hidden": 12, "num_layers": 2, "factored": True, "max_len": max_len}
    cfg.update(kw)
    m = L.LRCNCaptioner(**cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "lstms" in name or "head" in name or "embed" in name:
                p.normal_(0, 0.5)
    return m.eval()


# --- counts --------------------------------------------------------------------------------------------
def _caffenet_params(out_dim: int = 1000) -> int:
    """BVLC reference CaffeNet (examples/coco_caption/lrcn.prototxt conv1-fc8), weights + biases."""
    conv = (96 * 3 * 11 * 11 + 96) + (256 * 48 * 5 * 5 + 256) + (384 * 256 * 3 * 3 + 384) \
        + (384 * 192 * 3 * 3 + 384) + (256 * 192 * 3 * 3 + 256)
    fc = (256 * 6 * 6 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * out_dim + out_dim)
    return conv + fc


def _lstm(inp: int, hidden: int, biases: int) -> int:
    """One LSTM layer: 4 gates x (input + recurrent weights) + ``biases`` bias vectors of 4H."""
    return 4 * hidden * (inp + hidden) + biases * 4 * hidden


def _official(layers: int, factored: bool, biases: int) -> int:
    """The official graph: Embed 8801x1000 (no bias), LSTMs of 1000 (fc8's 1000-d image feature as a static
    input of LSTM 2 (factored) or LSTM 1 (unfactored)), predict 1000 -> 8801."""
    v, e, h, d = 8801, 1000, 1000, 1000
    image_layer = 1 if factored else 0
    lstms = sum(_lstm((e if i == 0 else h) + (d if i == image_layer else 0), h, biases) for i in range(layers))
    return _caffenet_params() + v * e + lstms + h * v + v


@pytest.mark.claim(paper=42, artefact="lrcn_caption",
                   claim="parameter counts of LRCN 1u/2u/2f/3f/4f equal the official prototxt graph's closed form "
                         "(torch LSTM biases; Caffe's single bias 4,000 fewer per layer)")
def test_counts_equal_the_official_graph():
    assert _caffenet_params() == 60_965_224  # the well-known CaffeNet count
    want = {"lrcn_caption_1u": (1, False), "lrcn_caption_2u": (2, False), "lrcn_caption_2f": (2, True),
            "lrcn_caption_3f": (3, True), "lrcn_caption_4f": (4, True)}
    for name, (layers, factored) in want.items():
        with torch.device("meta"):
            m = getattr(L, name)()
        assert count_params(m) == _official(layers, factored, biases=2) == L.VARIANTS[name].params, name
    assert _official(2, True, biases=1) == 98_584_025  # the Caffe net of the official solver (factored, 2-layer)
    assert _official(2, True, biases=2) - _official(2, True, biases=1) == 2 * 4 * 1000


def test_small_count_is_pinned():
    # pin: our CPU-scale configuration
    assert count_params(L.lrcn_caption_small()) == L.VARIANTS["lrcn_caption_small"].params == 1_695_368


def test_factored_image_enters_the_second_lstm():
    f, u = _tiny(factored=True), _tiny(factored=False)
    assert f.lstms[0].input_size == 8 and f.lstms[1].input_size == 12 + 8  # language-only bottom LSTM
    assert u.lstms[0].input_size == 8 + 8 and u.lstms[1].input_size == 12
    # factored: the bottom LSTM's output does not depend on the image
    x = torch.randn(2, 3, 16, 16)
    tok = torch.tensor([[1, 4, 5, 8], [1, 4, 6, 9]])
    with torch.no_grad():
        e = f.embed(tok)
        a, _ = f.lstms[0](e)
        assert torch.equal(a, f.lstms[0](f.embed(tok))[0])
        assert not torch.allclose(f(x, tok), f(x.flip(0), tok))


def test_first_step_image_only():
    """image_input='first_step': the image enters at t = 0 only; words after the first depend on it only through
    the state (changing the image at later steps changes nothing: there is none)."""
    m = _tiny(image_input="first_step")
    tok = torch.tensor([[1, 4, 5, 8, 2]])
    feat = torch.randn(1, 8)
    with torch.no_grad():
        full = m.forward_tokens(feat, tok)
        state = m.init_state(1, feat)
        steps = []
        for t in range(tok.shape[1]):
            logits, state = m.step(feat if t == 0 else torch.randn(1, 8), tok[:, t], state, t)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_stepwise_equals_teacher_forcing():
    m = _tiny(factored=False, num_layers=3)
    x = torch.randn(3, 3, 16, 16)
    tok = torch.randint(3, len(VOCAB), (3, 6))
    tok[:, 0] = 1
    with torch.no_grad():
        full = m(x, tok)
        feat = m.encode(x)
        state = m.init_state(3, feat)
        steps = []
        for t in range(tok.shape[1]):
            logits, state = m.step(feat, tok[:, t], state, t)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


# --- decoding -------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=42, artefact="lrcn_decoding", claim="beam search with beam size 1 equals greedy decoding exactly "
                                                             "(same words, bit-equal log-likelihoods)")
@pytest.mark.parametrize("factored,image_input,eos_bias", [(True, "every_step", 0.25), (False, "every_step", 0.0),
                                                           (True, "first_step", 0.25)])
def test_beam_one_equals_greedy(factored, image_input, eos_bias):
    m = _tiny(factored=factored, image_input=image_input, max_len=8, seed=3)
    with torch.no_grad():
        m.head.bias[m.eos_id] += eos_bias  # captions of several lengths
    offset = torch.linspace(-4, 4, 8)[:, None, None, None]  # images far apart: different captions
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1)) + offset
    g, b = D.greedy_decode(m, x), D.beam_search(m, x, beam_size=1)
    assert torch.equal(g.tokens, b.tokens)
    assert torch.equal(g.scores, b.scores)
    assert (g.tokens == m.eos_id).any() and (g.tokens == m.pad_id).any()  # some captions end early


def _all_captions(words: list[int], eos: int, max_len: int) -> list[list[int]]:
    """Every caption of the search space: w_1..w_n <eos> (n < max_len) and max_len words without <eos>."""
    out = []
    for n in range(max_len):
        out += [list(p) + [eos] for p in itertools.product(words, repeat=n)]
    out += [list(p) for p in itertools.product(words, repeat=max_len)]
    return out


@pytest.mark.claim(paper=42, artefact="lrcn_decoding",
                   claim="beam search returns the maximum-likelihood caption of an exhaustive enumeration (tiny "
                         "vocabulary and length, beam as large as the search space), with its log-likelihood")
def test_beam_search_is_exact_on_an_enumerable_space():
    vocab, max_len = 6, 3  # <pad> <bos> <eos> + three words
    m = _tiny(vocab=vocab, max_len=max_len, seed=5)
    words = [3, 4, 5]
    caps = _all_captions(words, m.eos_id, max_len)
    assert len(caps) == 1 + 3 + 9 + 27  # closed form: sum_{n<3} 3^n ended by <eos>, plus 3^3 cut at the limit
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    got = D.beam_search(m, x, beam_size=len(caps), max_len=max_len)
    with torch.no_grad():
        feat = m.encode(x)
        for i in range(x.shape[0]):
            tokens = torch.tensor([[m.bos_id] + c + [m.pad_id] * (max_len - len(c)) for c in caps])
            ll = D.sentence_log_likelihood(m, feat[i:i + 1].expand(len(caps), -1), tokens)
            order = ll.argsort(descending=True)
            assert float(ll[order[0]] - ll[order[1]]) > 1e-3  # a unique best caption: the comparison is exact
            best = caps[int(order[0])]
            top = got.tokens[i, 0].tolist()
            assert top[:len(best)] == best and all(t == m.pad_id for t in top[len(best):])
            torch.testing.assert_close(got.scores[i, 0], ll[order[0]], atol=1e-5, rtol=0)
            # the whole beam is the enumeration, best first
            torch.testing.assert_close(got.scores[i], ll[order], atol=1e-5, rtol=0)


def test_beam_scores_are_the_captions_likelihoods():
    m = _tiny(max_len=7, seed=8)
    x = torch.randn(4, 3, 16, 16)
    got = D.beam_search(m, x, beam_size=4)
    assert (got.scores[:, :-1] >= got.scores[:, 1:]).all()
    with torch.no_grad():
        feat = m.encode(x)
        for k in range(4):
            tok = torch.cat([torch.full((4, 1), m.bos_id), got.tokens[:, k]], 1)
            torch.testing.assert_close(D.sentence_log_likelihood(m, feat, tok), got.scores[:, k], atol=1e-5, rtol=0)
    # a wider beam never finds a less likely best caption here than greedy
    assert (got.scores[:, 0] >= D.greedy_decode(m, x).scores[:, 0] - 1e-6).all()


class _FixedSteps(nn.Module):
    """A stub captioner whose next-word distribution depends only on the step: ``probs[t]`` over
    (<pad>, <bos>, <eos>, "a"); the last row repeats. For closed-form beam search checks."""

    pad_id, bos_id, eos_id, max_len = 0, 1, 2, 4

    def __init__(self, probs: list[list[float]]):
        super().__init__()
        self.probs = torch.tensor(probs)

    def encode(self, images):
        return images.new_zeros(images.shape[0], 1)

    def init_state(self, batch, like):
        return [(like.new_zeros(1, batch, 1), like.new_zeros(1, batch, 1))]

    def step(self, feat, prev, state, t):
        p = self.probs[min(t, len(self.probs) - 1)]
        return p.clamp_min(1e-30).log().expand(feat.shape[0], -1).clone(), state


@pytest.mark.claim(paper=42, artefact="lrcn_decoding",
                   claim="length-normalised beam search ranks captions by log p / n^alpha (closed form: the winner "
                         "switches from the short to the long caption at alpha = log2(ln 0.45 / ln 0.5)); the "
                         "returned scores stay the plain log-likelihoods")
def test_length_normalisation_closed_form():
    # step 0: p(<eos>) = 0.5, p(a) = 0.5; later steps: p(<eos>) = 0.9, p(a) = 0.1
    m = _FixedSteps([[0, 0, 0.5, 0.5], [0, 0, 0.9, 0.1]])
    x = torch.zeros(2, 3, 4, 4)
    short, long = math.log(0.5), math.log(0.5 * 0.9)  # "<eos>" (n = 1) and "a <eos>" (n = 2)
    switch = math.log2(long / short)  # short / 1 = long / 2^alpha
    assert 0.20 < switch < 0.21  # by hand: log2(0.7985 / 0.6931) = log2(1.1520) = 0.204
    for alpha, words in ((0.0, []), (switch - 0.02, []), (switch + 0.02, [3]), (1.0, [3])):
        got = D.beam_search(m, x, beam_size=3, length_alpha=alpha)
        top = got.tokens[0, 0].tolist()
        assert top[:len(words) + 1] == words + [m.eos_id], (alpha, top)
        assert math.isclose(float(got.scores[0, 0]), long if words else short, abs_tol=1e-6)
    # alpha = 1: the beam in mean-log-probability order: "a <eos>" (-0.40), "<eos>" (-0.69), "a a <eos>" (-1.03)
    got = D.beam_search(m, x, beam_size=3, length_alpha=1.0)
    want = [long, short, math.log(0.5 * 0.1 * 0.9)]
    torch.testing.assert_close(got.scores[1], torch.tensor(want), atol=1e-6, rtol=0)
    assert torch.equal(D.beam_search(m, x, beam_size=3, length_alpha=0.0).tokens,
                       D.beam_search(m, x, beam_size=3).tokens)
    with pytest.raises(ValueError, match="length_alpha"):
        D.beam_search(m, x, length_alpha=-1.0)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_length_normalised_beam_is_exact_on_an_enumerable_space(alpha):
    vocab, max_len = 6, 3
    m = _tiny(vocab=vocab, max_len=max_len, seed=5)
    caps = _all_captions([3, 4, 5], m.eos_id, max_len)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    got = D.beam_search(m, x, beam_size=len(caps), max_len=max_len, length_alpha=alpha)
    n = torch.tensor([float(len(c)) for c in caps])  # predicted tokens: words + <eos>, or max_len when cut
    with torch.no_grad():
        feat = m.encode(x)
        tokens = torch.tensor([[m.bos_id] + c + [m.pad_id] * (max_len - len(c)) for c in caps])
        for i in range(x.shape[0]):
            ll = D.sentence_log_likelihood(m, feat[i:i + 1].expand(len(caps), -1), tokens)
            order = (ll / n ** alpha).argsort(descending=True)
            best = caps[int(order[0])]
            top = got.tokens[i, 0].tolist()
            assert top[:len(best)] == best and all(t == m.pad_id for t in top[len(best):])
            torch.testing.assert_close(got.scores[i], ll[order], atol=1e-5, rtol=0)



def test_task_passes_length_alpha_to_beam_search():
    m = _tiny(max_len=6, seed=8)
    m.head.bias.data[m.eos_id] += 1.0  # short captions win the plain search
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    task = build_task("captioning", beam_size=4, max_len=6, length_alpha=1.0, cider=False)
    targets = torch.tensor([[m.bos_id, 4, m.eos_id]] * 4)
    out, _ = task.evaluation_forward(m, (x, {"tokens": targets}))
    want = D.beam_search(m, x, beam_size=4, max_len=6, banned=(L.UNK,), length_alpha=1.0).tokens[:, 0]
    assert torch.equal(out.captions, want)
    plain = D.beam_search(m, x, beam_size=4, max_len=6, banned=(L.UNK,)).tokens[:, 0]
    assert (plain[:, 0] == m.eos_id).all() and not torch.equal(want, plain)  # normalised: longer captions win
    with pytest.raises(ValueError, match="length_alpha"):
        build_task("captioning", length_alpha=-0.5)

def test_sampling_follows_the_softmax_and_temperature():
    m = _tiny(max_len=1, seed=4)
    x = torch.randn(1, 3, 16, 16).expand(4000, -1, -1, -1)
    with torch.no_grad():
        logp = D._word_logp(m, m(x[:1])[:, 0])[0]
    s = D.sample_captions(m, x, 1.0, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(s.tokens[:, 0, 0], minlength=logp.numel()).float() / 4000
    assert (freq - logp.exp()).abs().max() < 0.04
    assert torch.equal(D.sample_captions(m, x[:8], 1.0, generator=torch.Generator().manual_seed(3)).tokens,
                       D.sample_captions(m, x[:8], 1.0, generator=torch.Generator().manual_seed(3)).tokens)
    cold = D.sample_captions(_tiny(max_len=6, seed=4), x[:8], 1e-4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(cold.tokens, D.greedy_decode(_tiny(max_len=6, seed=4), x[:8]).tokens)


# --- retrieval by sentence likelihood ----------------------------------------------------------------------
def test_likelihood_matrix_and_retrieval_ranks():
    import torchmetrics.retrieval as R

    m = _tiny(seed=2)
    x = torch.randn(5, 3, 16, 16)
    tok = torch.randint(3, len(VOCAB), (10, 5))
    tok[:, 0], tok[:, -1] = m.bos_id, m.eos_id
    s = D.likelihood_matrix(m, x, tok)
    with torch.no_grad():
        feat = m.encode(x)
        assert torch.allclose(s[3, 7], D.sentence_log_likelihood(m, feat[3:4], tok[7:8])[0], atol=1e-5)
    owner = torch.arange(10) // 2  # two sentences per image
    ann, search = D.retrieval_ranks(s, owner)
    for i in range(5):  # brute force: position of the first own sentence in image i's sorted list
        order = s[i].argsort(descending=True).tolist()
        assert int(ann[i]) == min(order.index(j) for j in range(10) if owner[j] == i)
    for j in range(10):
        assert int(search[j]) == s[:, j].argsort(descending=True).tolist().index(int(owner[j]))
    for k in (1, 2, 3):  # R@K equals torchmetrics' hit rate, both directions
        hit = R.RetrievalHitRate(top_k=k)
        want_ann = hit(s.reshape(-1), (owner[None, :] == torch.arange(5)[:, None]).reshape(-1),
                       indexes=torch.arange(5).repeat_interleave(10))
        assert D.recall_at_k(ann, ks=(k,))[f"r@{k}"] == pytest.approx(100 * float(want_ann))
        hit = R.RetrievalHitRate(top_k=k)
        want_search = hit(s.T.reshape(-1), (owner[:, None] == torch.arange(5)[None, :]).reshape(-1),
                          indexes=torch.arange(10).repeat_interleave(5))
        assert D.recall_at_k(search, ks=(k,))[f"r@{k}"] == pytest.approx(100 * float(want_search))
    assert D.recall_at_k(torch.tensor([0, 3, 1, 7]))["median_rank"] == 3.0  # 1-based 1, 2, 4, 8: (2 + 4) / 2


# --- metrics -------------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=42, artefact="captioning",
                   claim="BLEU-4, BLEU-3 with brevity penalty and ROUGE-L of torchmetrics equal hand-computed values")
def test_bleu_and_rouge_equal_hand_computed_values():
    from torchmetrics.text import ROUGEScore

    from convzoo.tasks.captioning import corpus_bleu

    hyp, ref = "a small black cat sat on the mat", "a black cat sat on the mat"
    # clipped n-gram precisions 7/8, 5/7, 4/6, 3/5; candidate longer than the reference: no brevity penalty
    want = (7 / 8 * 5 / 7 * 4 / 6 * 3 / 5) ** 0.25
    assert want == pytest.approx(1 / math.sqrt(2))
    assert corpus_bleu([hyp], [[ref]]) == pytest.approx(want, abs=1e-6)
    # "a black cat" against the 7-word reference: precisions 1, BP = exp(1 - 7/3)
    assert corpus_bleu(["a black cat"], [[ref]], n=3) == pytest.approx(math.exp(1 - 7 / 3), abs=1e-6)
    # ROUGE-L: LCS 7 words, P = 7/8, R = 7/7, F = 2PR/(P+R) = 14/15
    r = ROUGEScore(rouge_keys="rougeL")([hyp], [[ref]])
    assert float(r["rougeL_fmeasure"]) == pytest.approx(14 / 15, abs=1e-6)


# --- the task --------------------------------------------------------------------------------------------------
class Pairs(torch.utils.data.Dataset):
    """Fixture image/caption pairs: a coloured shape on grey, captioned "a <colour> <shape>" (shape from the
    image, colour from the image); the vocabulary follows convzoo's special ids."""

    COLOURS: ClassVar[dict] = {"red": (1.0, 0.1, 0.1), "blue": (0.1, 0.2, 1.0), "green": (0.1, 0.9, 0.2)}
    SHAPES = ("square", "circle", "cross")

    def __init__(self, n: int = 36, size: int = 24, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        self.items, self.captions, self.names = [], [], []
        for i in range(n):
            c = list(self.COLOURS)[i % 3]
            s = self.SHAPES[(i // 3) % 3]
            cy, cx = (int(v) for v in torch.randint(8, size - 8, (2,), generator=g))
            r = 6
            if s == "square":
                mask = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r)
            elif s == "circle":
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            else:
                mask = (((yy - cy).abs() <= 1) & ((xx - cx).abs() <= r)) | (((xx - cx).abs() <= 1) & ((yy - cy).abs() <= r))
            img = torch.full((3, size, size), 0.5)
            img[:, mask] = torch.tensor(self.COLOURS[c])[:, None]
            img += 0.05 * torch.randn(img.shape, generator=g)
            words = ["a", c, s]
            self.items.append((img, torch.tensor([1] + [VOCAB.index(w) for w in words] + [2])))
            self.captions.append(" ".join(words))
            self.names.append(f"{c}_{s}_{i}")
        self.info = DataInfo(name="fixture_pairs", task="captioning", in_chans=3, input_size=(size, size),
                             extra={"vocab": list(VOCAB)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_collate_pads_and_the_loss_ignores_padding():
    task = build_task("captioning")
    items = [(torch.zeros(3, 8, 8), torch.tensor([1, 4, 5, 2])), (torch.ones(3, 8, 8), torch.tensor([1, 4, 2])),
             (torch.ones(3, 8, 8), {"tokens": torch.tensor([1, 6, 2]),
                                    "references": [torch.tensor([1, 6, 2]), torch.tensor([1, 4, 6, 8, 2])]})]
    x, t = task.collate(items)
    assert x.shape == (3, 3, 8, 8)
    assert t["tokens"].tolist() == [[1, 4, 5, 2], [1, 4, 2, 0], [1, 6, 2, 0]]
    assert t["references"] == [[[4, 5]], [[4]], [[6], [4, 6, 8]]]
    logits = torch.randn(3, 3, len(VOCAB))
    from convzoo.tasks.captioning import CaptionOutputs

    loss = task.loss(CaptionOutputs(logits), t)
    target = t["tokens"][:, 1:]
    keep = target != 0
    want = -torch.log_softmax(logits, -1).gather(-1, target[..., None])[..., 0][keep].mean()
    torch.testing.assert_close(loss, want)
    assert task.batch_size(t) == 3


def _fit(model, data, steps: int, lr: float = 3e-3, batch: int = 12, seed: int = 0) -> list[float]:
    task = build_task("captioning")
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, collate_fn=task.collate,
                                         generator=torch.Generator().manual_seed(seed))
    losses = []
    model.train()
    while len(losses) < steps:
        for batch_ in loader:
            out, tgt = task.forward(model, batch_)
            loss = task.loss(out, tgt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if len(losses) >= steps:
                break
    return losses


def test_task_metrics_predict_and_nn_baseline(tmp_path):
    from convzoo.tasks.base import _InfoOnly
    from convzoo.tasks.captioning import nearest_neighbour_captions

    data = Pairs(36)
    model = L.LRCNCaptioner(vocab_size=len(VOCAB), encoder="small", encoder_kwargs={"widths": (16, 32)},
                            image_dim=32, embed_dim=16, hidden=32, max_len=5)
    losses = _fit(model, data, 120)
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    model.eval()
    task = build_task("captioning", beam_size=3)
    metrics = task.metrics(data)
    x, t = task.collate([data[i] for i in range(len(data))])
    with torch.no_grad():
        out, tgt = task.evaluation_forward(model, (x, t))
    task.update_metrics(metrics, out, tgt)
    res = {k: float(v) for k, v in metrics.compute().items()}
    assert {"bleu1", "bleu4", "rougeL_fmeasure"} <= set(res)
    assert res["bleu1"] > 0.6
    (pred,) = task.predict(model, x[:1], _InfoOnly(data.info))
    assert pred["captions"] and pred["captions"][0]["text"].startswith("a ")
    assert len(pred["captions"]) == 3
    line = task.format_prediction({"input": "img.png", **pred})
    assert line.startswith("img.png: \"a ") and "\n" not in line
    from convzoo.tasks.captioning import likelihood_retrieval

    r = likelihood_retrieval(model, data)
    assert set(r) == {"annotation", "search"} and r["search"]["r@10"] >= r["search"]["r@1"]
    nn_caps = nearest_neighbour_captions(model, data, data)
    assert nn_caps == data.captions  # its own training image is the nearest
    assert task.model_kwargs(None, data.info) == {"vocab_size": len(VOCAB)}


def test_predict_without_vocabulary_is_one_line():
    from convzoo.errors import ConvzooError

    task = build_task("captioning")
    with pytest.raises(ConvzooError, match="vocabulary") as e:
        task.predict(_tiny(), torch.randn(1, 3, 16, 16), None)
    assert "\n" not in str(e.value)


def test_bad_options_are_one_line():
    from convzoo.errors import ConvzooError

    for kw in ({"num_layers": 5}, {"num_layers": 1, "factored": True}, {"image_input": "never"}, {"encoder": "vgg"}):
        with pytest.raises(ConvzooError) as e:
            L.LRCNCaptioner(**kw)
        assert "\n" not in str(e.value)


def test_freeze_encoder_keeps_fc8_trainable():
    with torch.device("meta"):
        m = L.lrcn_caption_2f(freeze_encoder=True)
    trainable = {n.split(".")[0] for n, p in m.encoder.named_parameters() if p.requires_grad}
    assert trainable == {"fc8"}
    assert all(p.requires_grad for p in m.lstms.parameters())
    assert isinstance(m.encoder.features[3], nn.LocalResponseNorm)


# --- data and recipes ----------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=42, artefact="coco_captions", claim="reads COCO 2014 captions JSON and images (fixture in the real format): pairs for training, every reference at evaluation")
def test_coco_captions_reads_the_real_format(tmp_path):
    from fixture_captions import CAPTIONS, write_coco_captions

    from convzoo.data import build_dataset

    root = write_coco_captions(tmp_path)
    train = build_dataset("coco_captions", "train", root=str(root), size=32, min_count=1, max_words=3)
    val = build_dataset("coco_captions", "val", root=str(root), size=32, min_count=1)
    assert len(train) == sum(len(c) for c in CAPTIONS) and len(val) == len(CAPTIONS)  # pairs / images
    x, tok = train[0]
    assert x.shape == (3, 32, 32) and tok[0] == 1 and tok[-1] == 2 and len(tok) == 3 + 2  # cut at max_words
    vocab = train.info.extra["vocab"]
    assert vocab[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and "red" in vocab and train.info.task == "captioning"
    _, t = val[1]
    assert len(t["references"]) == 3 and torch.equal(t["tokens"], t["references"][0])
    assert " ".join(vocab[i] for i in t["references"][0][1:-1]) == "a blue circle on grey"
    with pytest.raises(Exception, match="data.root"):
        build_dataset("coco_captions", "train")


@pytest.mark.claim(paper=42, artefact="lrcn_caption_coco_paper",
                   claim="the paper recipe holds the official coco_caption solver's values")
def test_paper_recipe_values():
    from convzoo.engine import load_recipe

    cfg = load_recipe("lrcn_caption_coco_paper")
    # official BVLC/caffe examples/coco_caption/lrcn_solver.prototxt and lrcn.prototxt, written literally
    assert cfg["model"]["name"] == "lrcn_caption_2f" and cfg["model"]["kwargs"]["freeze_encoder"] is True
    opt = cfg["optimizer"]
    assert (opt["name"], opt["lr"], opt["weight_decay"], opt["kwargs"]["momentum"]) == ("sgd", 0.01, 0.0, 0.9)
    mult = {g["match"]: g["lr_mult"] for g in opt["param_groups"]}
    assert mult == {"encoder.fc8.weight": 0.1, "encoder.fc8.bias": 0.2, "head.bias": 2.0}
    assert cfg["schedule"]["name"] == "step" and cfg["schedule"]["kwargs"]["gamma"] == 0.5
    captions = 414_113  # COCO train2014 captions
    assert cfg["schedule"]["kwargs"]["step_size"] == round(20_000 * 100 / captions)  # stepsize 20000 iterations
    assert cfg["epochs"] == math.ceil(110_000 * 100 / captions)  # max_iter 110000
    assert cfg["batch_size"] == 100 and cfg["grad_clip"] == 10.0 and cfg["seed"] == 1701
    assert cfg["task"]["kwargs"]["loss_weight"] == 20.0 and cfg["task"]["kwargs"]["max_len"] == 20
    assert cfg["data"]["kwargs"] == {"size": 227, "min_count": 5, "max_words": 20}


def test_paper_recipe_groups_select_the_official_parameters():
    from convzoo.engine import load_recipe
    from convzoo.methods.base import param_groups

    cfg = load_recipe("lrcn_caption_coco_paper")
    with torch.device("meta"):
        m = L.lrcn_caption_2f(**cfg["model"]["kwargs"])
    groups = param_groups(m, cfg["optimizer"])
    n = {g["match"]: sum(p.numel() for p in g["params"]) for g in groups}
    assert n["encoder.fc8.weight"] == 4096 * 1000 and n["encoder.fc8.bias"] == 1000 and n["head.bias"] == 8801
    frozen = sum(p.numel() for p in m.parameters() if not p.requires_grad)
    assert frozen == _caffenet_params() - (4096 * 1000 + 1000)  # conv1-fc7 fixed ("freeze-convnet")


@pytest.mark.slow
@pytest.mark.claim(paper=42, artefact="lrcn_caption_photos",
                   claim="the CPU-scale recipe learns on the captioned photos (training loss falls over 3 short epochs)")
def test_photos_recipe_learns(tmp_path):
    from convzoo.engine import train

    values = {"epochs": 3, "limit_train_batches": 8, "limit_eval_batches": 1, "batch_size": 16,
              "eval_batch_size": 8, "data.kwargs.size": 32}
    torch.manual_seed(0)
    res = train("lrcn_caption_photos", values=values, out_dir=tmp_path, run_name="r", progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert {"bleu4", "rougeL_fmeasure"} <= set(res.metrics)
    report = (res.run_dir / "report.md").read_text()
    assert "nearest-neighbour caption baseline" in report and (res.run_dir / "captions.csv").is_file()
    assert "(best-validation-BLEU-4 checkpoint, held-out split)" in report  # best.safetensors, own-feature baseline
    assert "| image -> sentence |" in report and "| sentence -> image |" in report
