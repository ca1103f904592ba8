"""The README's Python example is tests/python/readme_example.py, and it runs."""
import pathlib
import re
import subprocess
import sys

import keyformer

HERE = pathlib.Path(__file__).parent


def readme_python_blocks():
    """The README's Python blocks: the llama-cpp-python one (run by test_llama_cpp_python.py), then the
    ctypes example."""
    readme = (HERE.parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 2 and "keyformer.llama_cpp" in blocks[0]
    return blocks


def test_readme_python_block_is_the_example():
    example = (HERE / "readme_example.py").read_text()
    assert readme_python_blocks()[1].strip() in example


def test_readme_example_runs():
    env = {"KEYFORMER_LIB": str(keyformer.library_path()), "PYTHONPATH": str(HERE.parent.parent / "bindings" / "python")}
    out = subprocess.run([sys.executable, str(HERE / "readme_example.py")], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert re.fullmatch(r"evicted cells \[\d+, \d+, \d+, \d+\] kept 4\n", out), out
