"""Network.save / lrpfast.load: round trip, atomic writes, hostile files."""

import json
import os
import pickle
import stat
import zipfile

import numpy as np
import pytest

from lrpfast.layers import (Activation, Affine, Dense, Dropout, Flatten, Identity,
                            LayerNorm, ReLU, Sigmoid, SoftMax, Tanh)
from lrpfast.network import FORMAT_VERSION, Network, load


def _every_layer_net(dtype):
    net = Network((2, 3, 4), [
        Flatten(name="flat"), Dense(9, "tanh", name="d0"), Dropout(0.25),
        Dense(8, "sigmoid"), LayerNorm(eps=1e-3, name="ln"), Activation("tanh"),
        Dense(7, "relu"), ReLU(), Tanh(), Sigmoid(), Identity(), Dense(3, "linear"),
        SoftMax(name="head")], dtype=dtype, seed=4)
    rng = np.random.default_rng(0)
    for layer in net.layers:  # make every parameter non-default
        for name, p in layer.params().items():
            setattr(layer, name, rng.normal(size=p.shape))
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    net = _every_layer_net(dtype)
    path = tmp_path / "model.npz"
    net.save(path)
    net2 = load(path)
    assert net2.input_shape == net.input_shape
    assert net2.output_shape == net.output_shape
    assert net2.dtype == net.dtype
    assert len(net2.layers) == len(net.layers)
    for a, b in zip(net.layers, net2.layers):
        assert type(a) is type(b)
        assert a.get_config() == b.get_config()
        assert a.describe() == b.describe()
        assert sorted(a.params()) == sorted(b.params())
        for name, p in a.params().items():
            q = b.params()[name]
            assert q.dtype == p.dtype and q.shape == p.shape
            assert q.tobytes() == p.tobytes()
    x = np.random.default_rng(1).normal(size=(5, 2, 3, 4))
    assert net2.forward(x).tobytes() == net.forward(x).tobytes()


def test_tabular_round_trip_and_any_extension(tmp_path):
    net = Network((5,), [Dense(4, "relu"), Dense(2)], dtype="float64", seed=0)
    path = tmp_path / "model.weights"  # the name is kept as given
    net.save(str(path))
    assert os.listdir(tmp_path) == ["model.weights"]
    net2 = load(str(path))
    assert net2.input_shape == (5,)
    assert net2.layers[0].weight.tobytes() == net.layers[0].weight.tobytes()


def test_save_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "m.npz"
    a = Network((3,), [Dense(2)], seed=0)
    b = Network((3,), [Dense(2)], seed=1)
    a.save(path)
    b.save(path)
    assert os.listdir(tmp_path) == ["m.npz"]  # no temp file left behind
    assert load(path).layers[0].weight.tobytes() == b.layers[0].weight.tobytes()


def test_failed_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    Network((3,), [Dense(2)], seed=0).save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        Network((3,), [Dense(2)], seed=1).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_saved_file_respects_umask(tmp_path):
    path = tmp_path / "m.npz"
    old = os.umask(0o022)
    try:
        Network((3,), [Dense(2)], seed=0).save(path)
    finally:
        os.umask(old)
    # Like any file written with open(): 0o644 under umask 022.
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_save_is_deterministic(tmp_path):
    net = Network((3,), [Dense(2)], seed=0)
    net.save(tmp_path / "a.npz")
    net.save(tmp_path / "b.npz")
    a = np.load(tmp_path / "a.npz")
    b = np.load(tmp_path / "b.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        assert a[k].tobytes() == b[k].tobytes()


# ---------------------------------------------------------------------------
# Bad files: each is a ValueError, and nothing in them is executed.
# ---------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    Network((1, 6, 6), [Dense(16, "relu"), Dense(2), SoftMax()], seed=0).save(path)
    return path


def _arrays(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _header(arrays):
    return json.loads(arrays["__header__"].tobytes().decode())


def _with_header(arrays, header):
    out = dict(arrays)
    out["__header__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    return out


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(saved, fraction):
    raw = saved.read_bytes()
    saved.write_bytes(raw[:int(len(raw) * fraction)])
    with pytest.raises(ValueError, match="model.npz"):
        load(saved)


def test_corrupted_member_data(saved):
    raw = bytearray(saved.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside the stored weights: CRC mismatch
    saved.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="model.npz"):
        load(saved)


def test_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, x=np.arange(3), y=np.ones((2, 2)))
    with pytest.raises(ValueError, match="not a lrpfast model file"):
        load(path)


def test_foreign_header_format(saved):
    arrays = _arrays(saved)
    header = _header(arrays)
    header["format"] = "something-else"
    np.savez(saved, **_with_header(arrays, header))
    with pytest.raises(ValueError, match="not a lrpfast model file"):
        load(saved)


def test_text_and_empty_files(tmp_path):
    (tmp_path / "t.npz").write_text("hello, I am not a model\n")
    (tmp_path / "e.npz").write_bytes(b"")
    for name in ("t.npz", "e.npz"):
        with pytest.raises(ValueError, match=name):
            load(tmp_path / name)


def test_plain_npy_file(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match="array.npy"):
        load(path)


class _Evil:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_array_is_refused_and_not_executed(saved, tmp_path):
    marker = tmp_path / "PWNED"
    arrays = _arrays(saved)
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil(str(marker))
    arrays["layer0.weight"] = evil
    np.savez(saved, **arrays)
    with pytest.raises(ValueError, match="model.npz"):
        load(saved)
    assert not marker.exists()


def test_plain_pickle_file_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(ValueError, match="model.npz"):
        load(path)
    assert not marker.exists()


def test_newer_format_version(saved):
    arrays = _arrays(saved)
    header = _header(arrays)
    header["version"] = FORMAT_VERSION + 1
    np.savez(saved, **_with_header(arrays, header))
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}.*upgrade"):
        load(saved)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.update(version="1"), "invalid format version"),
    (lambda h: h.update(version=0), "invalid format version"),
    (lambda h: h.pop("layers"), "invalid layer spec"),
    (lambda h: h["layers"][0].update(kind="conv2d"), "invalid layer spec"),
    (lambda h: h["layers"][0]["config"].update(evil="x"), "invalid layer spec"),
    (lambda h: h["layers"][0].update(config="units=3"), "invalid layer spec"),
    (lambda h: h.update(dtype="object"), "dtype"),
    (lambda h: h.update(input_shape=[1, 0]), "input_shape"),
    (lambda h: h.update(input_shape=[]), "input_shape"),
    (lambda h: h.update(input_shape=[1, 6]), r"weight must have shape \(6, 16\)"),
    (lambda h: h["layers"][0]["config"].update(units=15), "shape"),
])
def test_invalid_header(saved, edit, match):
    arrays = _arrays(saved)
    header = _header(arrays)
    edit(header)
    np.savez(saved, **_with_header(arrays, header))
    with pytest.raises(ValueError, match=match):
        load(saved)


def test_corrupted_header_bytes(saved):
    arrays = _arrays(saved)
    arrays["__header__"] = np.frombuffer(b"\xff\xfe{not json", np.uint8)
    np.savez(saved, **arrays)
    with pytest.raises(ValueError, match="corrupted header"):
        load(saved)


@pytest.mark.parametrize("change", ["missing", "extra", "nan"])
def test_bad_weight_arrays(saved, change):
    arrays = _arrays(saved)
    if change == "missing":
        del arrays["layer1.bias"]
    elif change == "extra":
        arrays["layer9.weight"] = np.zeros(3)
    else:
        w = arrays["layer0.weight"].copy()
        w[0, 0] = np.nan
        arrays["layer0.weight"] = w
    np.savez(saved, **arrays)
    with pytest.raises(ValueError):
        load(saved)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError):
        load(tmp_path)  # a directory


def test_zip_is_npz_container(saved):
    # The format is a plain .npz: any zip tool can list it.
    with zipfile.ZipFile(saved) as zf:
        names = sorted(zf.namelist())
    assert names == ["__header__.npy", "layer0.bias.npy", "layer0.weight.npy",
                     "layer1.bias.npy", "layer1.weight.npy"]


def test_huge_units_in_header_refused_without_allocating(tmp_path):
    """A crafted header must not make load allocate what the arrays do not hold."""
    import json
    path = tmp_path / "m.npz"
    Network((3,), [Dense(2)], seed=0).save(path)
    with np.load(path) as data:
        files = dict(data)
    header = json.loads(files["__header__"].tobytes().decode())
    header["layers"][0]["config"]["units"] = 10**9
    files["__header__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **files)
    with pytest.raises(ValueError, match="shape"):
        load(path)


def test_pickled_file_message_does_not_invite_unsafe_loading(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, __header__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError) as info:
        load(path)
    assert "allow_pickle=True" not in str(info.value)
    assert "pickle" in str(info.value)


# ---------------------------------------------------------------------------
# Format versions: Affine (version 2), and files written before it (version 1)
# ---------------------------------------------------------------------------

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_version_1_files_still_load(dtype):
    """tests/data holds files written by lrpfast before Affine (see its README);
    they load into the network they were made from."""
    from conftest import randomize_params

    path = os.path.join(DATA, f"network_v1_{dtype}.npz")
    assert _header(_arrays(path))["version"] == 1
    net = load(path)
    want = randomize_params(Network((1, 4, 4), [
        Dense(8, "relu", name="h"), LayerNorm(name="ln"), Dropout(0.25, name="drop"),
        Dense(6, "tanh"), Sigmoid(), Identity(), Flatten(), Dense(3), SoftMax()],
        dtype=dtype, seed=7), seed=7)
    assert repr(net) == repr(want)
    assert [l.name for l in net.layers] == [l.name for l in want.layers]
    for a, b in zip(net.layers, want.layers):
        for name, p in b.params().items():
            assert a.params()[name].tobytes() == p.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_affine_round_trip_is_bit_exact_and_version_2(tmp_path, dtype):
    rng = np.random.default_rng(5)
    net = Network((2, 3), [Affine(rng.normal(size=6), rng.normal(size=(2, 3)), name="sc"),
                           Dense(4, "relu"), Affine(-2.0, 0.5), Dense(2)],
                  dtype=dtype, seed=0)
    path = tmp_path / "affine.npz"
    net.save(path)
    assert _header(_arrays(path))["version"] == 2
    net2 = load(path)
    assert repr(net2) == repr(net) and net2.layers[0].name == "sc"
    for a, b in zip(net.layers, net2.layers):
        for name, p in a.params().items():
            assert b.params()[name].tobytes() == p.tobytes()
    x = rng.normal(size=(4, 2, 3))
    assert net2.forward(x).tobytes() == net.forward(x).tobytes()


def test_networks_without_affine_are_written_as_version_1(tmp_path):
    Network((3,), [Dense(2)], seed=0).save(tmp_path / "plain.npz")
    assert _header(_arrays(tmp_path / "plain.npz"))["version"] == 1


def test_affine_in_a_version_1_file_is_refused(tmp_path):
    path = tmp_path / "affine.npz"
    Network((3,), [Affine(2.0, 1.0), Dense(2)], seed=0).save(path)
    arrays = _arrays(path)
    header = _header(arrays)
    header["version"] = 1
    np.savez(path, **_with_header(arrays, header))
    with pytest.raises(ValueError, match="invalid layer spec.*'affine'.*version 1"):
        load(path)
