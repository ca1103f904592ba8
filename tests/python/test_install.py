"""`pip install bindings/python` gives an importable package that finds the library via KEYFORMER_LIB."""
import pathlib
import subprocess
import sys

import keyformer

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def test_pip_install_and_import(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(ROOT / "bindings" / "python")], check=True, cwd=tmp_path)
    code = ("import keyformer, sys; assert keyformer.__file__.startswith(sys.argv[1]), keyformer.__file__; "
            "print(keyformer.version(), keyformer.api_version())")
    out = subprocess.run([sys.executable, "-c", code, str(target)], check=True, capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "KEYFORMER_LIB": str(keyformer.library_path())})
    assert out.stdout.split() == [keyformer.version(), str(keyformer.api_version())]
