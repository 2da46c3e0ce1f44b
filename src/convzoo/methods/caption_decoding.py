"""Caption decoding and retrieval by sentence likelihood for LRCN captioners (paper 42, Sec. 5).

Donahue et al., "Long-term Recurrent Convolutional Networks for Visual Recognition and Description",
arXiv 1411.4389 (seed paper 42). Sec. 5.1: captions are generated word by word, each step feeding
the previous word back; the paper compares beam search and random sampling, and ranks images and
sentences (Flickr30k retrieval, Recall@K and median rank) by the likelihood the model gives a
sentence for an image.

A model decodes through three methods (:class:`convzoo.models.lrcn_caption.LRCNCaptioner`):
``encode(images) -> feat``, ``init_state(batch, like) -> state`` and
``step(feat, prev_words, state, t) -> (logits, state)``, plus ``forward_tokens(feat, tokens)``
(teacher forcing) and the ids ``bos_id``, ``eos_id``, ``pad_id``.

The search space: a caption is ``w_1 .. w_n <eos>`` with ``n < max_len``, or ``max_len`` words
without ``<eos>`` (cut at the length limit); ``<pad>`` and ``<bos>`` are never emitted. A caption's
score is its log-likelihood ``sum_t log p(w_t | w_<t, image)`` (softmax over the whole vocabulary).

* :func:`greedy_decode`: the most likely word at every step.
* :func:`beam_search`: ``beam_size`` hypotheses per image; a finished hypothesis keeps its slot and
  its score, so the beam holds the best ``beam_size`` of finished and live hypotheses together.
  ``length_alpha`` > 0 ranks them by ``log p / n ** length_alpha`` (``n`` predicted tokens; the usual
  length normalisation, e.g. Wu et al. 2016 use a smoothed ``n``), which counters the plain
  likelihood's preference for short captions; 0 is the plain search.
  With ``beam_size=1`` it performs the same operations as :func:`greedy_decode` (equal tokens and
  bit-equal scores); with a beam as large as the search space it returns the most likely caption
  (both proven in tests/models/test_lrcn_caption.py).
* :func:`sample_captions`: random sampling from ``softmax(logits / temperature)``.
* :func:`sentence_log_likelihood`, :func:`likelihood_matrix`, :func:`retrieval_ranks`,
  :func:`recall_at_k`: retrieval by sentence likelihood with Recall@K and median rank, for image
  annotation (image -> sentences) and image search (sentence -> images).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class Captions(NamedTuple):
    """Decoded captions: ``tokens`` (B, K, L) word ids (``<pad>`` after ``<eos>``), ``scores`` (B, K)
    log-likelihoods (``-inf``: no hypothesis in that slot), best first."""

    tokens: torch.Tensor
    scores: torch.Tensor


def _word_logp(model, logits: torch.Tensor, banned: tuple[int, ...] = ()) -> torch.Tensor:
    """log-softmax over the vocabulary with <pad>, <bos> (and the ``banned`` ids, e.g. <unk>) made impossible
    to emit."""
    logp = F.log_softmax(logits.float(), dim=-1)
    for i in (model.pad_id, model.bos_id, *banned):
        logp[..., i] = float("-inf")
    return logp


def _reorder(state, index: torch.Tensor):
    return [(h.index_select(1, index), c.index_select(1, index)) for h, c in state]


def _one_word_per_step(model, images: torch.Tensor, max_len: int | None, banned: tuple[int, ...],
                       choose) -> Captions:
    """Decode one caption per image, the word of each step given by ``choose(logp, logits)`` -> (B,) from the
    step's (B, V) word log-probabilities and raw logits; scores are the model's log-likelihoods up to <eos>."""
    max_len = int(max_len or model.max_len)
    feat = model.encode(images)
    b = feat.shape[0]
    state = model.init_state(b, feat)
    prev = torch.full((b,), model.bos_id, dtype=torch.long, device=feat.device)
    scores = feat.new_zeros(b, dtype=torch.float32)
    done = torch.zeros(b, dtype=torch.bool, device=feat.device)
    out = []
    for t in range(max_len):
        logits, state = model.step(feat, prev, state, t)
        logp = _word_logp(model, logits, banned)  # (B, V)
        word = choose(logp, logits)
        scores = torch.where(done, scores, scores + logp.gather(1, word[:, None])[:, 0])
        word = torch.where(done, torch.full_like(word, model.pad_id), word)
        out.append(word)
        done = done | (word == model.eos_id)
        prev = word
        if done.all():
            break
    return Captions(torch.stack(out, 1)[:, None], scores[:, None])


@torch.no_grad()
def greedy_decode(model, images: torch.Tensor, max_len: int | None = None, banned: tuple[int, ...] = ()) -> Captions:
    """The most likely next word at every step; (B, 1, L) tokens and (B, 1) scores."""
    return _one_word_per_step(model, images, max_len, banned, lambda logp, logits: logp.argmax(-1))


@torch.no_grad()
def beam_search(model, images: torch.Tensor, beam_size: int = 5, max_len: int | None = None,
                banned: tuple[int, ...] = (), length_alpha: float = 0.0) -> Captions:
    """Beam search over captions; (B, K, L) tokens and (B, K) scores, best first (K = ``beam_size``).

    ``length_alpha`` > 0 ranks hypotheses (while searching and at the end) by the length-normalised score
    ``log p / n ** length_alpha``, ``n`` the number of predicted tokens (the words plus ``<eos>``; ``max_len``
    for a caption cut at the limit): 1 is the mean log-probability per token, 0 (default) the plain
    log-likelihood. The returned ``scores`` stay the plain log-likelihoods, in the normalised order."""
    max_len, k, alpha = int(max_len or model.max_len), int(beam_size), float(length_alpha)
    if alpha < 0:
        raise ValueError(f"length_alpha must be >= 0, got {length_alpha}")
    feat = model.encode(images)
    b = feat.shape[0]
    feat = feat.repeat_interleave(k, 0)  # (B K, D)
    state = model.init_state(b * k, feat)
    scores = torch.full((b, k), float("-inf"), device=feat.device)
    scores[:, 0] = 0.0  # one hypothesis (the empty caption) to start from
    done = torch.zeros(b, k, dtype=torch.bool, device=feat.device)
    lengths = torch.zeros(b, k, device=feat.device)  # predicted tokens of each hypothesis (for length_alpha)
    seqs = torch.zeros(b, k, 0, dtype=torch.long, device=feat.device)
    prev = torch.full((b * k,), model.bos_id, dtype=torch.long, device=feat.device)
    offset = (torch.arange(b, device=feat.device) * k)[:, None]
    for t in range(max_len):
        logits, state = model.step(feat, prev, state, t)
        logp = _word_logp(model, logits, banned).view(b, k, -1)  # (B, K, V)
        v = logp.shape[-1]
        cand = scores[..., None] + logp
        # a finished hypothesis stays as it is: one candidate (in the <pad> slot) with its own score
        stay = torch.full_like(cand, float("-inf"))
        stay[..., model.pad_id] = scores
        cand = torch.where(done[..., None], stay, cand)
        if alpha:  # rank by log p / n^alpha: a finished hypothesis keeps its length, a live one has t + 1 tokens
            n = torch.where(done, lengths, torch.full_like(lengths, t + 1.0))  # (B, K)
            idx = (cand / n[..., None] ** alpha).view(b, k * v).topk(k, dim=1).indices
            top = cand.view(b, k * v).gather(1, idx)
            lengths = n.gather(1, idx // v)
        else:
            top, idx = cand.view(b, k * v).topk(k, dim=1)  # (B, K)
        beam, word = idx // v, idx % v
        seqs = torch.cat([seqs.gather(1, beam[..., None].expand(-1, -1, t)), word[..., None]], dim=-1)
        done = done.gather(1, beam) | (word == model.eos_id)
        scores = top
        state = _reorder(state, (beam + offset).view(-1))
        prev = word.view(-1)
        if (done | torch.isinf(scores)).all():
            break
    return Captions(seqs, scores)


@torch.no_grad()
def sample_captions(model, images: torch.Tensor, temperature: float = 1.0, max_len: int | None = None,
                    generator: torch.Generator | None = None, banned: tuple[int, ...] = ()) -> Captions:
    """Random sampling from softmax(logits / temperature); scores are the model's log-likelihoods."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")

    def choose(logp, logits):
        probs = torch.softmax(_word_logp(model, logits.float() / temperature, banned), dim=-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    return _one_word_per_step(model, images, max_len, banned, choose)


def decode(model, images: torch.Tensor, method: str = "beam", beam_size: int = 5, temperature: float = 1.0,
           max_len: int | None = None, generator: torch.Generator | None = None,
           banned: tuple[int, ...] = (), length_alpha: float = 0.0) -> Captions:
    """``method``: "beam", "greedy" or "sample" (``length_alpha``: beam search only)."""
    if method == "beam":
        return beam_search(model, images, beam_size, max_len, banned, length_alpha)
    if method == "greedy":
        return greedy_decode(model, images, max_len, banned)
    if method == "sample":
        return sample_captions(model, images, temperature, max_len, generator, banned)
    raise ValueError(f"decoding method must be 'beam', 'greedy' or 'sample', got {method!r}")


def caption_ids(tokens: torch.Tensor, eos_id: int, pad_id: int) -> list[int]:
    """One caption's word ids up to (not including) <eos>, without <pad>."""
    out = []
    for w in tokens.tolist():
        if w == eos_id:
            break
        if w != pad_id:
            out.append(w)
    return out


# --- retrieval by sentence likelihood ------------------------------------------------------------------
def sentence_log_likelihood(model, feat: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(sentence | image) by teacher forcing: feat (B, D), tokens (B, L) = <bos> w_1 .. <eos> <pad>..
    -> (B,) sums of log p(w_t | w_<t, image) over the non-<pad> targets."""
    logits = model.forward_tokens(feat, tokens[:, :-1])
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, tokens[:, 1:, None])[..., 0]
    return (logp * (tokens[:, 1:] != model.pad_id)).sum(1)


@torch.no_grad()
def likelihood_matrix(model, images: torch.Tensor, tokens: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """(N_images, N_sentences) matrix of log p(sentence j | image i) (the paper's retrieval score)."""
    feat = model.encode(images)
    n, m = feat.shape[0], tokens.shape[0]
    out = feat.new_empty(n, m, dtype=torch.float32)
    for i in range(n):
        for j in range(0, m, chunk):
            tk = tokens[j:j + chunk]
            out[i, j:j + chunk] = sentence_log_likelihood(model, feat[i:i + 1].expand(tk.shape[0], -1), tk)
    return out


def retrieval_ranks(scores: torch.Tensor, image_of_sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based ranks of the first correct item. ``scores`` (N_images, N_sentences), higher = better;
    ``image_of_sentence`` (N_sentences,) the image each sentence describes.

    Annotation: for image i, the best rank among its sentences when all sentences are sorted by
    ``scores[i]``; search: for sentence j, the rank of its image when all images are sorted by
    ``scores[:, j]``. Ties count against the query (items with an equal score rank ahead)."""
    n = scores.shape[0]
    gt = image_of_sentence.long()
    match = gt[None, :] == torch.arange(n, device=scores.device)[:, None]  # (N, M)
    best_true = scores.masked_fill(~match, float("-inf")).max(1).values  # (N,)
    annotation = ((scores >= best_true[:, None]) & ~match).sum(1)
    true_img = scores.gather(0, gt[None, :])[0]  # (M,)
    search = ((scores >= true_img[None, :]).sum(0) - 1)
    return annotation, search


def recall_at_k(ranks: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """R@K (percent of queries whose first correct item is in the top K) and median rank (1-based)."""
    ranks = ranks.float()
    out = {f"r@{k}": float((ranks < k).float().mean() * 100) for k in ks}
    out["median_rank"] = float((ranks + 1).quantile(0.5))  # the middle two averaged, as numpy.median
    return out
