"""pytest setup: import the in-tree bindings and skip (clearly) when libkeyformer is not found.

The bindings come from bindings/python (ahead of any installed copy). The library is found the
way the bindings find it: $KEYFORMER_LIB, else build/lib/libkeyformer.so above the package, else
the system loader. Tests marked ``nolib`` run without it. Set KEYFORMER_TEST_REQUIRE_LIB=1 to turn
the skip into a failure (CI, where the library is built first).
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(1, os.path.join(ROOT, "bindings", "lab", "python"))  # the evaluation package (the lab's)

import keyformer  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "nolib: the test does not need libkeyformer.so")  # also in pytest.ini


def pytest_report_header(config):
    try:
        return "libkeyformer: %s (version %s, API %d)" % (
            keyformer.library_path(), keyformer.version(), keyformer.api_version())
    except keyformer.LibraryNotFoundError as e:
        return "libkeyformer: not found (%s)" % e


@pytest.fixture(autouse=True)
def _library(request):
    if request.node.get_closest_marker("nolib"):
        return
    try:
        keyformer.load_library()
    except keyformer.LibraryNotFoundError as e:
        if os.environ.get("KEYFORMER_TEST_REQUIRE_LIB") == "1":
            pytest.fail("libkeyformer.so is required (KEYFORMER_TEST_REQUIRE_LIB=1): %s" % e)
        pytest.skip("libkeyformer not available: %s" % e)
