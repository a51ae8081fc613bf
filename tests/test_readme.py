"""The README's Python examples run as written (each in a fresh folder)."""

import os
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if README.exists() else []
# Optional frameworks an example needs: skip (cleanly) where they are absent.
NEEDS = {"sklearn": "sklearn", "torch": "torch", "onnx": "onnx", "keras": "keras",
         "lrpfast.plot": "matplotlib", "dask": "dask", "distributed": "distributed"}
# Modules an example needs without importing them (dask's to_zarr needs zarr).
USES = {"to_zarr": "zarr"}


def test_readme_has_examples():
    assert len(BLOCKS) >= 4, "README lost its examples"


@pytest.mark.parametrize("k", range(len(BLOCKS)))
def test_readme_example_runs(k, tmp_path, capsys):
    code = BLOCKS[k]
    for word, module in NEEDS.items():
        if re.search(rf"^\s*(import|from) {word}\b", code, re.M):
            pytest.importorskip(module)
    for word, module in USES.items():
        if word in code:
            pytest.importorskip(module)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, f"README.md example {k}", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out.strip(), "every README example prints something"
