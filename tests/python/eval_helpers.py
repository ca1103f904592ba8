"""Helpers shared by the tests of keyformer_eval's fidelity, tune and questions commands
(test_evaluate_fidelity.py, test_evaluate_questions.py): writing JSONL inputs, running the CLI the
way the Go command does, and capturing a command's output in this process."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_jsonl(path, lines):
    """Writes ``lines`` (dicts as JSON, strings as they are) to ``path``, one a line; returns ``path``."""
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return path


def run_cli(*args):
    """Runs `python -m keyformer_eval ARGS` the way the Go command does (PYTHONPATH, no library)."""
    path = os.pathsep.join(os.path.join(ROOT, "bindings", *d) for d in (("lab", "python"), ("python",)))
    env = dict(os.environ, PYTHONPATH=path, KEYFORMER_LIB="/nonexistent")
    return subprocess.run([sys.executable, "-m", "keyformer_eval"] + list(args), capture_output=True,
                          text=True, env=env, cwd=ROOT)


class Capture:
    """A stand-in for stdout that keeps what is written."""

    def __init__(self):
        """Starts empty."""
        self.parts = []

    def write(self, s):
        """Keeps ``s``."""
        self.parts.append(s)

    @property
    def text(self):
        """Everything written so far."""
        return "".join(self.parts)


def run_json(command, *args, **kwargs):
    """Runs a command function in this process (its ``as_json`` argument set by the caller), output
    captured; returns (the output, its last line decoded as JSON)."""
    out = Capture()
    command(*args, out=out, **kwargs)
    return out.text, json.loads(out.text.splitlines()[-1])


def approx(value):
    """``value`` up to the 6 decimals of the JSON output."""
    return pytest.approx(value, abs=2e-6)
