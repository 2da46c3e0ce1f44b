"""Image-text retrieval (paper 5): the bidirectional hinge ranking loss against closed forms per negative-sampling
option, Recall@K / median rank against torchmetrics' retrieval metrics and a brute-force loop, the task's batches,
evaluation and predict on a fixture folder of captioned photos (tests/fixture_captioned.py), and the recipes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fixture_captioned import write_stamps
from torchmetrics.retrieval import RetrievalHitRate, RetrievalRecall

import convzoo
from convzoo.data import build_dataset
from convzoo.errors import ConvzooError
from convzoo.methods.ranking import BidirectionalRankingLoss, bidirectional_ranking_loss, ranking_hinges
from convzoo.tasks import build_task
from convzoo.tasks.image_text_retrieval import (
    RetrievalOutputs,
    caption_key,
    median_rank,
    recall_at_k,
    retrieval_metrics,
    retrieval_ranks,
)

pytestmark = pytest.mark.paper(5)

S = torch.tensor([[0.9, 0.5, 0.1],
                  [0.6, 0.3, 0.2],
                  [0.0, 0.8, 0.7]])


# --- the loss ----------------------------------------------------------------------------------------
@pytest.mark.claim(paper=5, artefact="bidirectional_ranking_loss",
                   claim="equals the hand-computed hinge sums on a 3x3 score matrix for each negative side (sentence, "
                         "image, both), margin 0.2, sum and mean over the positive pairs")
def test_loss_closed_form_per_option():
    m = 0.2
    # sentence side: image i against the other sentences j of its row, max(0, m - S[i,i] + S[i,j])
    # row 0: (0.2-0.9+0.5)=-0.2 -> 0, (0.2-0.9+0.1) -> 0; row 1: (0.2-0.3+0.6)=0.5, (0.2-0.3+0.2)=0.1;
    # row 2: (0.2-0.7+0.0) -> 0, (0.2-0.7+0.8)=0.3                                       total 0.9
    sentence = 0.5 + 0.1 + 0.3
    # image side: sentence j against the other images i of its column, max(0, m - S[j,j] + S[i,j])
    # col 0: (0.2-0.9+0.6) -> 0, (0.2-0.9+0.0) -> 0; col 1: (0.2-0.3+0.5)=0.4, (0.2-0.3+0.8)=0.7;
    # col 2: (0.2-0.7+0.1) -> 0, (0.2-0.7+0.2) -> 0                                        total 1.1
    image = 0.4 + 0.7
    for negatives, want in (("sentence", sentence), ("image", image), ("both", sentence + image)):
        got = bidirectional_ranking_loss(S, m, negatives, reduction="sum")
        assert float(got) == pytest.approx(want, abs=1e-6), negatives
        assert float(bidirectional_ranking_loss(S, m, negatives)) == pytest.approx(want / 3, abs=1e-6)
        assert float(BidirectionalRankingLoss(m, negatives, "sum")(S)) == pytest.approx(want, abs=1e-6)
    # VSE++ max of hinges: per image the largest sentence hinge (0, 0.5, 0.3), per sentence the largest image hinge
    assert float(bidirectional_ranking_loss(S, m, "both", reduction="sum", hardest=True)) == pytest.approx(
        0.8 + 0.7, abs=1e-6)
    # a pair marked positive (same caption) is no negative: S[1,0] leaves the sentence side, S[1,0] the image side
    pos = torch.zeros(3, 3, dtype=torch.bool)
    pos[1, 0] = True
    assert float(bidirectional_ranking_loss(S, m, "sentence", pos, "sum")) == pytest.approx(0.1 + 0.3, abs=1e-6)
    assert float(bidirectional_ranking_loss(S, m, "image", pos, "sum")) == pytest.approx(image, abs=1e-6)


@pytest.mark.claim(paper=5, artefact="bidirectional_ranking_loss",
                   claim="zero when every positive beats every negative by the margin; gradient only from violating "
                         "pairs; equals a brute-force double loop on random scores")
def test_loss_zero_gradients_and_brute_force():
    good = torch.eye(4) * 0.9  # positives 0.9, negatives 0: margin 0.2 met everywhere
    assert float(bidirectional_ranking_loss(good, 0.2)) == 0.0
    s = S.clone().requires_grad_(True)
    bidirectional_ranking_loss(s, 0.2, "sentence", reduction="sum").backward()
    # violating sentence-side pairs: (1,0), (1,2), (2,1): +1 on them, -1 per violation on their row's diagonal
    want = torch.tensor([[0.0, 0, 0], [1, -2, 1], [0, 1, -1]])
    assert torch.equal(s.grad, want)
    g = torch.Generator().manual_seed(0)
    r = torch.rand(6, 6, generator=g) * 2 - 1
    brute_s = sum(max(0.0, 0.3 - float(r[i, i]) + float(r[i, j])) for i in range(6) for j in range(6) if j != i)
    brute_i = sum(max(0.0, 0.3 - float(r[j, j]) + float(r[i, j])) for i in range(6) for j in range(6) if i != j)
    sent, img = ranking_hinges(r, 0.3)
    assert float(sent.sum()) == pytest.approx(brute_s, rel=1e-5) and float(img.sum()) == pytest.approx(brute_i, rel=1e-5)
    with pytest.raises(ValueError, match="negatives must be one of sentence, image, both"):
        bidirectional_ranking_loss(r, negatives="text")


# --- the metrics -------------------------------------------------------------------------------------
@pytest.mark.claim(paper=5, artefact="image_text_retrieval",
                   claim="R@1/5/10 and median rank by hand on a 3x3 score matrix, both directions")
def test_recall_and_median_rank_by_hand():
    keys = torch.arange(3)
    out = retrieval_metrics(S, torch.eye(3), keys, keys, ks=(1, 2))  # image_emb = S, text_emb = I: scores = S
    # annotation (rows): image 0 ranks its caption 1st, image 1 2nd (0.6 > 0.3), image 2 2nd (0.8 > 0.7)
    assert retrieval_ranks(S, torch.eye(3, dtype=torch.bool)).tolist() == [0, 1, 1]
    assert out["i2t_r1"] == pytest.approx(100 / 3) and out["i2t_r2"] == 100.0 and out["i2t_medr"] == 2.0
    # search (columns): caption 0 -> image 0 first; caption 1 -> 0.8 and 0.5 above 0.3: rank 2; caption 2 -> first
    assert retrieval_ranks(S.t(), torch.eye(3, dtype=torch.bool)).tolist() == [0, 2, 0]
    assert out["t2i_r1"] == pytest.approx(200 / 3) and out["t2i_r2"] == pytest.approx(200 / 3) and out["t2i_medr"] == 1.0
    assert out["rsum"] == pytest.approx(100 / 3 + 100 + 200 / 3 + 200 / 3)
    assert median_rank(torch.tensor([0, 1, 2, 3])) == 2.0  # floor(median 1.5) + 1
    assert recall_at_k(torch.tensor([0, 4, 9, 10]), 10) == 0.75


@pytest.mark.claim(paper=5, artefact="image_text_retrieval",
                   claim="Recall@1/5/10 equal torchmetrics RetrievalRecall (one match per query) and RetrievalHitRate "
                         "(several: any match is a hit) in both directions; median rank equals a brute-force loop")
@pytest.mark.parametrize("duplicates", [False, True])
def test_recall_parity_with_torchmetrics(duplicates):
    g = torch.Generator().manual_seed(1)
    n, d = 40, 8
    img = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    txt = torch.nn.functional.normalize(img + 0.8 * torch.randn(n, d, generator=g), dim=1)
    keys = torch.arange(n) // 3 if duplicates else torch.arange(n)  # 3 photos share a caption
    out = retrieval_metrics(img, txt, keys, keys)
    scores = img @ txt.t()
    rel = keys[:, None] == keys[None, :]
    for side, s, r in (("i2t", scores, rel), ("t2i", scores.t(), rel.t())):
        idx = torch.arange(n)[:, None].expand(n, n).reshape(-1)
        for k in (1, 5, 10):
            hit = RetrievalHitRate(top_k=k)(s.reshape(-1), r.reshape(-1), indexes=idx)
            assert out[f"{side}_r{k}"] == pytest.approx(100 * float(hit), abs=1e-4), (side, k)
            if not duplicates:
                rec = RetrievalRecall(top_k=k)(s.reshape(-1), r.reshape(-1), indexes=idx)
                assert out[f"{side}_r{k}"] == pytest.approx(100 * float(rec), abs=1e-4), (side, k)
        brute = []
        for q in range(n):
            order = sorted(range(n), key=lambda j: -float(s[q, j]))
            brute.append(next(pos for pos, j in enumerate(order) if r[q, j]))
        assert out[f"{side}_medr"] == math.floor(np.median(brute)) + 1


# --- the task ----------------------------------------------------------------------------------------
@pytest.fixture
def stamps(tmp_path):
    root = tmp_path / "stamps"
    write_stamps(root, per_pair=3)
    return root


def test_task_batches_loss_and_evaluation(stamps):
    task = build_task("image_text_retrieval", negatives="sentence")
    ds = build_dataset("captioned_photos", "train", root=str(stamps), size=16)
    images, targets = task.collate([ds[i] for i in range(6)])
    assert images.shape == (6, 3, 16, 16) and targets["tokens"].shape[0] == 6
    assert targets["keys"].tolist() == [caption_key(ds.tokens[i]) for i in range(6)]
    torch.manual_seed(0)
    model = convzoo.create_model("image_text_bow", vocab_size=len(ds.vocab), image_widths=(8, 16), embed_dim=16,
                                 hidden_dim=16)
    scores, _ = task.forward(model, (images, targets))
    assert scores.shape == (6, 6) and float(scores.detach().abs().max()) <= 1 + 1e-5
    assert torch.isfinite(task.loss(scores, targets))
    model.eval()
    with torch.no_grad():
        outputs, _ = task.evaluation_forward(model, (images, targets))
    assert isinstance(outputs, RetrievalOutputs) and torch.allclose(outputs.scores, model(images, targets["tokens"]),
                                                                    atol=1e-6)
    metrics = task.metrics(ds)
    task.update_metrics(metrics, outputs, targets)
    values = metrics.compute()
    assert {"i2t_r1", "i2t_r5", "i2t_r10", "i2t_medr", "t2i_r1", "t2i_medr", "rsum"} <= set(values)
    lines = task.report({k: float(v) for k, v in values.items()}, ds)
    assert any("annotation (image -> text)" in ln for ln in lines)
    with pytest.raises(ValueError, match="negatives must be one of"):
        build_task("image_text_retrieval", negatives="text")


@pytest.mark.claim(paper=5, artefact="image_text_retrieval",
                   claim="predict: an image prints its best captions from the train/val pool, a .txt caption its best images")
def test_predict_on_a_photo_and_a_caption(stamps, tmp_path):
    task = build_task("image_text_retrieval", top=3)
    ds = build_dataset("captioned_photos", "test", root=str(stamps), size=16)
    torch.manual_seed(0)
    model = convzoo.create_model("image_text_bow", vocab_size=len(ds.vocab), image_widths=(8, 16), embed_dim=16,
                                 hidden_dim=16).eval()
    card = convzoo.get_card("image_text_bow")
    photo = ds.path(0)
    preds = list(task.predict_file(model, card, photo, ds.info, tmp_path))
    assert len(preds) == 1 and len(preds[0]["captions"]) == 3
    assert len({c["caption"] for c in preds[0]["captions"]}) == 3  # distinct captions
    line = task.format_prediction(preds[0])
    assert line.startswith(str(photo)) and line.count('"') == 6
    caption = tmp_path / "q.txt"
    caption.write_text("\nA red square.\n")
    preds = list(task.predict_file(model, card, caption, ds.info, tmp_path))
    names = [m["name"] for m in preds[0]["images"]]
    scores = [m["score"] for m in preds[0]["images"]]
    assert len(names) == 3 and scores == sorted(scores, reverse=True)
    assert "(\"A" in task.format_prediction(preds[0])
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ConvzooError, match="holds no caption"):
        list(task.predict_file(model, card, tmp_path / "empty.txt", ds.info, tmp_path))
    info = ds.info.__class__(ds.info.name, ds.info.task, 3)
    with pytest.raises(ConvzooError, match="needs its vocabulary"):
        list(task.predict_file(model, card, photo, info, tmp_path))


# --- Flickr (Karpathy's split format) -------------------------------------------------------------------
@pytest.mark.claim(paper=5, artefact="image_text_retrieval",
                   claim="Flickr8k/30k in Karpathy's split JSON: one item per sentence, an image's five sentences share its "
                         "id; at evaluation each image is ranked once and any of its sentences is a hit (1k-image protocol)")
@pytest.mark.claim(paper=5, artefact="flickr8k", claim="reads Karpathy's dataset_flickr8k.json and its images (fixture in the real format): splits, five sentences per image id")
def test_flickr_reader_and_one_rank_per_image(tmp_path):
    from fixture_captioned import write_flickr

    write_flickr(tmp_path)
    train = build_dataset("flickr8k", "train", root=str(tmp_path), size=16, min_count=1)
    test = build_dataset("flickr8k", "test", root=str(tmp_path), size=16, min_count=1)
    assert len(train) == 4 * 5 and len(test) == 2 * 5 and test.image_ids == [6] * 5 + [7] * 5
    x, target = test[0]
    assert x.shape == (3, 16, 16) and target["image_id"] == 6 and int(target["tokens"][0]) == 1
    assert len(build_dataset("flickr8k", "train", root=str(tmp_path), size=16).vocab) < len(train.vocab)  # min count 5
    task = build_task("image_text_retrieval")
    _, targets = task.collate([test[i] for i in range(10)])
    assert targets["image_ids"].tolist() == [6] * 5 + [7] * 5
    # embeddings by hand: image 6 is closest to its sentences 0-4 except sentence 3
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 5), dim=1)
    txt = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1]] * 3 + [[0.2, 1.0]] + [[1.0, 0.2]]
                                                     + [[0.1, 1.0]] * 5), dim=1)
    metrics = task.metrics(test)
    task.update_metrics(metrics, RetrievalOutputs(img @ txt.t(), img, txt), targets)
    out = {k: float(v) for k, v in metrics.compute().items()}
    assert out["i2t_r1"] == 100.0  # both images find one of their sentences first
    # search: 10 sentence queries over the 2 images (not 10 copies); sentence 3 ranks image 7 first
    assert out["t2i_r1"] == pytest.approx(90.0) and out["t2i_r5"] == 100.0
    # in a training batch, two sentences of one image are no negatives of each other
    scores = torch.zeros(10, 10)  # every pair violates the margin
    loss_same = task.loss(scores, targets)
    other = dict(targets, image_ids=torch.arange(10))
    assert float(loss_same) < float(task.loss(scores, other))
    with pytest.raises(ConvzooError, match="no dataset_flickr30k.json"):
        build_dataset("flickr30k", "train", root=str(tmp_path))
    with pytest.raises(ConvzooError, match="needs data.root"):
        build_dataset("flickr8k", "train")


# --- recipes ----------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=5, artefact="image_text_flickr_paper",
                   claim="the paper recipe holds the report's shape and sheet G3's stated defaults: 4,096-d fc7-like image "
                         "feature, 1,024-d joint space, BoW words seen >= 5 times, margin 0.2, both negatives, Adam 2e-4")
def test_paper_recipe_values():
    from convzoo.engine import load_recipe

    cfg = load_recipe("image_text_flickr_paper")
    # sheet G3, paper 5, point 3 (library defaults the report leaves open) and point 1 (4,096-d fc7 feature)
    assert cfg["model"]["name"] == "image_text_embedding"
    with torch.device("meta"):
        model = convzoo.create_model("image_text_embedding")
    assert model.embed_dim == 1024 and model.image.fc7[0].out_features == 4096
    assert model.text_encoder_name == "bow"
    assert cfg["data"]["name"] == "flickr8k" and cfg["data"]["kwargs"]["min_count"] == 5
    assert cfg["task"]["kwargs"] == {"margin": 0.2, "negatives": "both"}
    assert cfg["optimizer"]["name"] == "adam" and cfg["optimizer"]["lr"] == 2.0e-4
    # VSE++ (Faghri et al. 2018): 30 epochs, batch 128, lr x0.1 after 15
    assert (cfg["epochs"], cfg["batch_size"]) == (30, 128)
    assert cfg["schedule"]["name"] == "step" and cfg["schedule"]["kwargs"] == {"step_size": 15, "gamma": 0.1}


@pytest.mark.slow
def test_paper_recipe_takes_steps_on_fixture_flickr(tmp_path):
    from fixture_captioned import write_flickr

    from convzoo.engine import train

    write_flickr(tmp_path / "flickr")
    torch.manual_seed(0)
    res = train("image_text_flickr_paper", values={"data.root": str(tmp_path / "flickr"), "data.kwargs.size": 32,
                                                   "data.kwargs.min_count": 1, "epochs": 1, "batch_size": 4,
                                                   "eval_batch_size": 10, "limit_train_batches": 2},
                out_dir=tmp_path / "runs", run_name="r", progress=False)
    assert math.isfinite(res.history[0]["train_loss"]) and "val_i2t_r1" in res.history[0]


@pytest.mark.claim(paper=5, artefact="image_text_photos",
                   claim="each negative-sampling option (sentence, image, both) trains on the captioned photos: the ranking "
                         "loss falls over 2 short epochs and R@K is reported both ways")
@pytest.mark.slow
@pytest.mark.parametrize("negatives", ["sentence", "image", "both"])
def test_photos_recipe_learns_with_each_negative_option(negatives, tmp_path):
    from convzoo.data.fetch import data_home, is_fetched
    from convzoo.engine import train

    if not is_fetched("captioned_photos"):
        pytest.fail(f"captioned photos not in {data_home('captioned_photos')}: run `convzoo data fetch captioned_photos`",
                    pytrace=False)
    torch.manual_seed(0)
    res = train("image_text_photos", values={"task.kwargs.negatives": negatives, "epochs": 3, "limit_train_batches": 6,
                                             "data.kwargs.augment": False},
                out_dir=tmp_path, run_name=negatives, progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert {"val_i2t_r10", "val_t2i_r10", "val_i2t_medr", "val_t2i_medr"} <= set(res.history[-1])
