"""The ctypes declarations against include/keyformer.h (no library needed)."""

import ctypes
import os
import re
import shutil
import subprocess

import pytest

import keyformer
from keyformer import _lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "include", "keyformer.h")

pytestmark = pytest.mark.nolib


def header_text():
    if not os.path.isfile(HEADER):
        pytest.skip("no %s" % HEADER)
    with open(HEADER) as f:
        return f.read()


def test_every_function_is_declared():
    declared = set(re.findall(r"KEYFORMER_API\s[^;]*?\b(keyformer_\w+)\s*\(", header_text()))
    assert declared == set(_lib.PROTOTYPES)


def test_constants_match_the_header():
    text = header_text()
    defines = dict(re.findall(r"#define\s+(KEYFORMER_\w+)\s+(-?\d+)\b", text))
    assert int(defines["KEYFORMER_API_VERSION"]) == keyformer.API_VERSION
    for s in keyformer.Status:
        name = "KEYFORMER_OK" if s.name == "OK" else "KEYFORMER_ERR_" + s.name
        assert int(defines[name]) == s.value
    for p in keyformer.Policy:
        assert int(defines["KEYFORMER_POLICY_" + p.name]) == p.value
    for g in keyformer.Granularity:
        assert int(defines["KEYFORMER_GRANULARITY_" + g.name]) == g.value


STRUCTS = {
    "keyformer_params": _lib.KeyformerParams,
    "keyformer_attention": _lib.KeyformerAttention,
    "keyformer_eviction": _lib.KeyformerEviction,
    "keyformer_keys": _lib.KeyformerKeys,
}


def test_struct_layouts_match_the_c_compiler(tmp_path):
    header_text()
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler to check struct layouts with")
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "keyformer.h"', "int main(void) {"]
    for cname, cls in STRUCTS.items():
        lines.append('printf("%s %%zu\\n", sizeof(%s));' % (cname, cname))
        for field, _ in cls._fields_:
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (cname, field, cname, field))
    lines += ["return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c99", "-I", os.path.dirname(HEADER), str(src), "-o", str(exe)], check=True)
    got = dict(line.split() for line in subprocess.run([str(exe)], check=True, capture_output=True,
                                                       text=True).stdout.splitlines())
    for cname, cls in STRUCTS.items():
        assert int(got[cname]) == ctypes.sizeof(cls), cname
        for field, _ in cls._fields_:
            assert int(got["%s.%s" % (cname, field)]) == getattr(cls, field).offset, (cname, field)
    assert keyformer.EVICTION_DTYPE.itemsize == int(got["keyformer_eviction"])


def test_missing_library_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv(keyformer.ENV_VAR, str(tmp_path / "nowhere.so"))
    with pytest.raises(keyformer.LibraryNotFoundError, match="KEYFORMER_LIB"):
        keyformer.find_library()


def test_library_in_a_build_tree_above_the_package(monkeypatch, tmp_path):
    lib = tmp_path / "build" / "lib" / "libkeyformer.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"")
    pkg = tmp_path / "bindings" / "python" / "keyformer"
    pkg.mkdir(parents=True)
    monkeypatch.delenv(keyformer.ENV_VAR, raising=False)
    monkeypatch.setattr(_lib, "__file__", str(pkg / "_lib.py"))
    assert keyformer.find_library() == str(lib)


def test_library_env_var_may_name_a_folder(monkeypatch, tmp_path):
    (tmp_path / "libkeyformer.so").write_bytes(b"")
    monkeypatch.setenv(keyformer.ENV_VAR, str(tmp_path))
    assert keyformer.find_library() == str(tmp_path / "libkeyformer.so")
