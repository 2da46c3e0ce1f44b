"""The captioned photos (``convzoo data fetch captioned_photos``: Tux Paint's stamps from the Debian package
``tuxpaint-stamps-default``): the reader, tokenizer, vocabulary and fixed split on a fixture folder written here
(tests/fixture_captioned.py), the fetch of a folder tree out of a fixture .deb, and the fetched real files
(785 pairs, 16 categories, 585 / 100 / 100), which need ``convzoo data fetch captioned_photos`` once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from fixture_captioned import CATEGORIES, write_stamps
from fixture_files import write_deb

from convzoo.data import build_dataset
from convzoo.data import fetch as fetch_mod
from convzoo.data.captioned_photos import (
    MEAN,
    STD,
    Vocabulary,
    captioned_photos_split,
    collate_captions,
    load_captioned_photos,
    read_stamp,
    split_counts,
    tokenize,
)
from convzoo.errors import ConvzooError

pytestmark = pytest.mark.paper(5)


@pytest.fixture
def stamps(tmp_path):
    root = tmp_path / "stamps"
    return root, write_stamps(root)


def test_tokenize_and_vocabulary():
    assert tokenize("A huge dump-truck. It's RED, 3 wheels!") == ["a", "huge", "dump", "truck", "it's", "red", "3",
                                                                  "wheels"]
    assert tokenize("Un éléphant_gris.") == ["un", "éléphant", "gris"]
    v = Vocabulary.build(["A red square.", "A red disc.", "A blue bar."], min_count=1)
    assert v.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert v.itos[4:] == ["a", "red", "bar", "blue", "disc", "square"]  # by count, ties alphabetical
    assert v.encode("A red cat.") == [1, 4, 5, 3, 2] and v.encode("red", bos=False, eos=False) == [5]
    assert v.decode([1, 4, 5, 2, 9, 9]) == "a red" and v.decode([0, 6, 3]) == "bar <unk>"
    assert Vocabulary.build(["A red square.", "A red disc.", "A blue bar."], min_count=2).itos[4:] == ["a", "red"]
    assert Vocabulary(v.itos) == v and len(v) == 10


def test_collate_pads():
    items = [(torch.zeros(3, 4, 4), torch.tensor([1, 5, 2])), (torch.ones(3, 4, 4), torch.tensor([1, 5, 6, 7, 2]))]
    x, tokens, lengths = collate_captions(items)
    assert x.shape == (2, 3, 4, 4) and lengths.tolist() == [3, 5]
    assert tokens.tolist() == [[1, 5, 2, 0, 0], [1, 5, 6, 7, 2]]


@pytest.mark.claim(paper=5, artefact="captioned_photos",
                   claim="reader: every NAME.png with a non-empty first line in NAME.txt is a pair (line 1 = the English "
                         "caption), alpha-composited onto white, padded square, the top-level folder as class, cached as .npz")
def test_reader_on_fixture_folder(stamps):
    root, pairs = stamps
    photos = load_captioned_photos(root, size=16)
    assert list(zip(photos.names, photos.captions)) == pairs  # uncaptioned and empty-caption PNGs left out
    assert photos.categories == CATEGORIES and photos.images.shape == (len(pairs), 16, 16, 3)
    assert [photos.categories[k] for k in photos.labels] == [n.split("/")[0] for n in photos.names]
    i = photos.names.index("animals/squares/red_square_0")
    im = photos.images[i]
    assert (im[0, 0] == 255).all() and (im[8, 8] == [220, 30, 30]).all()  # transparent -> white; centre is red
    # padding keeps the aspect: a wide image gets white bands at top and bottom
    from PIL import Image

    wide = root / "wide.png"
    Image.fromarray(np.tile(np.array([0, 0, 0, 255], np.uint8), (10, 40, 1)), "RGBA").save(wide)
    arr = read_stamp(wide, 20)
    assert (arr[0] == 255).all() and (arr[10] < 20).all()
    grey = photos.images[photos.names.index("food/grey_blob")]
    assert (grey[8, 8] == 90).all() and (grey[0, 8] == 255).all()  # LA read as grey, opaque; white bands
    # the first read wrote the cache; a fresh read of the cache gives the same pixels
    cache = root / "photos_16px.npz"
    assert cache.is_file()
    with np.load(cache) as z:
        assert np.array_equal(z["images"], photos.images) and tuple(z["names"].tolist()) == photos.names


@pytest.mark.claim(paper=5, artefact="captioned_photos",
                   claim="fixed split by the SHA-1 of each name: 585 / 100 / 100 of 785, disjoint, and a name keeps its side "
                         "when another photo is removed")
def test_split_is_fixed_and_stable():
    assert split_counts(785) == (585, 100, 100) and split_counts(38) == (28, 5, 5) and split_counts(2) == (2, 0, 0)
    names = [f"cat{i % 16}/sub/photo_{i}" for i in range(785)]
    parts = captioned_photos_split(names)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [585, 100, 100]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(785))
    again = captioned_photos_split(list(reversed(names)))  # by name, not by position
    assert {names[::-1][i] for i in again["test"]} == {names[i] for i in parts["test"]}
    dropped = int(parts["train"][0])  # one train photo fewer: the test photos stay in test
    fewer = [n for j, n in enumerate(names) if j != dropped]
    test_fewer = {fewer[i] for i in captioned_photos_split(fewer)["test"]}
    assert len(test_fewer & {names[i] for i in parts["test"]}) >= 99


def test_dataset_items_and_options(stamps):
    root, pairs = stamps
    train = build_dataset("captioned_photos", "train", root=str(root), size=16)
    test = build_dataset("captioned_photos", "test", root=str(root), size=16)
    assert len(train) + len(test) + len(build_dataset("captioned_photos", "val", root=str(root), size=16)) == len(pairs)
    assert not set(train.names) & set(test.names)
    x, tokens = train[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert tokens[0] == train.vocab.bos_id and tokens[-1] == train.vocab.eos_id
    assert train.vocab.decode(tokens) == " ".join(tokenize(train.captions[0]))
    assert test.vocab == train.vocab  # one vocabulary, from the train split
    assert train.info.task == "image_text_retrieval" and train.info.extra["vocab"] == train.vocab.itos
    white = (1.0 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(x[:, 0, 0], white, atol=1e-5)
    raw = build_dataset("captioned_photos", "train", root=str(root), size=16, raw=True)
    assert raw[0][0].max() <= 1.0 and "mean" not in raw.info.extra
    cls = build_dataset("captioned_photos", "train", root=str(root), size=16, target="class")
    assert cls.info.task == "classification" and cls.info.num_classes == 3
    assert cls[0][1] == CATEGORIES.index(train.names[0].split("/")[0])
    aug = build_dataset("captioned_photos", "train", root=str(root), size=16, augment=True)
    assert aug[0][0].shape == (3, 16, 16)
    with pytest.raises(ConvzooError, match="target must be one of caption, class"):
        build_dataset("captioned_photos", "train", root=str(root), target="words")


def test_missing_folder_names_the_fetch_command(tmp_path):
    with pytest.raises(ConvzooError, match="run `convzoo data fetch captioned_photos` first") as e:
        build_dataset("captioned_photos", "train", root=str(tmp_path / "nowhere"))
    assert "\n" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvzooError, match="no NAME.png with a NAME.txt caption"):
        build_dataset("captioned_photos", "train", root=str(tmp_path / "empty"))


@pytest.mark.claim(paper=5, artefact="captioned_photos",
                   claim="fetch of a folder tree from a Debian package keeps every .png/.txt below the stamps folder at its "
                         "relative path (names repeat across folders), lists them in FILES.txt, checks the GPL-2 copyright")
def test_fetch_tree_from_a_deb(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "cache"))
    src = tmp_path / "src"
    pairs = write_stamps(src)
    files = {f"usr/share/tuxpaint/stamps/{p.relative_to(src).as_posix()}": p.read_bytes()
             for p in src.rglob("*") if p.is_file()}
    files["usr/share/tuxpaint/stamps/animals/squares/red_square_0_desc_fr.ogg"] = b"OggS"  # not kept
    files["usr/share/doc/tuxpaint-stamps-default/copyright"] = b"Files: *\nLicense: GPL-2\n"
    calls = []

    def run(cmd, cwd=None, **kw):
        calls.append(list(cmd))
        write_deb(Path(cwd) / f"{cmd[2]}_1.0-1_all.deb", files, "xz")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch_mod.subprocess, "run", run)
    assert not fetch_mod.is_fetched("captioned_photos")
    folder = fetch_mod.fetch("captioned_photos")
    assert calls == [["apt-get", "download", "tuxpaint-stamps-default"]]
    listed = (folder / "FILES.txt").read_text().split()
    assert len(listed) == len(files) - 2 and not any(f.endswith(".ogg") for f in listed)
    assert (folder / "animals/squares/red_square_0.png").is_file() and fetch_mod.is_fetched("captioned_photos")
    assert (folder / "copyright").read_bytes().endswith(b"GPL-2\n")
    assert "png/.txt files below usr/share/tuxpaint/stamps" in (folder / "SOURCE.txt").read_text()
    ds = build_dataset("captioned_photos", "train", size=8)  # root: the cache
    assert len(ds) == split_counts(len(pairs))[0]
    (folder / listed[0]).unlink()
    assert not fetch_mod.is_fetched("captioned_photos")


def _need_real():
    if not fetch_mod.is_fetched("captioned_photos"):
        pytest.fail(f"captioned photos not in {fetch_mod.data_home('captioned_photos')}: run "
                    f"`convzoo data fetch captioned_photos` first", pytrace=False)


@pytest.mark.claim(paper=5, artefact="captioned_photos",
                   claim="the fetched Tux Paint stamps hold 785 captioned photos in 16 categories, split 585 / 100 / 100")
def test_real_captioned_photos():
    _need_real()
    photos = load_captioned_photos(size=32)
    assert len(photos.names) == 785 and len(photos.categories) == 16  # real-data.md: 796 PNG, 785 captioned
    assert photos.captions[photos.names.index("animals/birds/crow")] == "A crow."
    sizes = {s: len(build_dataset("captioned_photos", s, size=32)) for s in ("train", "val", "test")}
    assert sizes == {"train": 585, "val": 100, "test": 100}
    ds = build_dataset("captioned_photos", "test", size=32)
    x, tokens = ds[0]
    assert x.shape == (3, 32, 32) and int(tokens[0]) == 1 and int(tokens[-1]) == 2
    assert 700 < len(ds.vocab) < 1000
