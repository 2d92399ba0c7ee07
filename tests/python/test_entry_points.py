"""No silent holes: every allocation-related driver entry point that cuda.h
declares is either wrapped by the shim (WRAPPED in scripts/list_entry_points.py)
or passed through with a reason (shim/passthrough_points.def), and
docs/entry-points.md is what the script generates.

cuda.h: $VG_CUDA_H, else $CUDA_HOME/include/cuda.h (CUDA_HOME: /usr/local/cuda).

    python3 -m unittest -v tests/python/test_entry_points.py
"""

import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.environ.get("VG_ROOT") or os.path.join(HERE, "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "list_entry_points.py")
PASSTHROUGH = os.path.join(ROOT, "shim", "passthrough_points.def")
ENTRY_POINTS = os.path.join(ROOT, "shim", "entry_points.def")
DOC = os.path.join(ROOT, "docs", "entry-points.md")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import list_entry_points as lep  # noqa: E402

CUDA_H = os.environ.get("VG_CUDA_H") or lep.default_cuda_h()
# The names of this version and later must all be declared (older headers lack some).
DOCUMENTED_VERSION = 13000


class EntryPoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(CUDA_H):
            raise AssertionError("%s is missing (set CUDA_HOME or VG_CUDA_H)" % CUDA_H)
        with open(CUDA_H, encoding="utf-8", errors="replace") as f:
            cls.text = f.read()
        cls.names = lep.parse_cuda_h(cls.text)
        cls.version = lep.cuda_version(cls.text) or 0
        cls.rows, cls.problems = lep.read_passthrough(PASSTHROUGH)
        cls.passthrough = dict(cls.rows)

    def test_parser_sees_exported_variants(self):
        # _v2 renames, _ptsz variants, legacy redeclarations, multi-line declarations
        for n in ("cuMemAlloc", "cuMemAlloc_v2", "cuMemAllocAsync", "cuMemAllocAsync_ptsz",
                  "cuMemHostRegister", "cuMemHostRegister_v2", "cuGetProcAddress",
                  "cuGetProcAddress_v2", "cuMemFree", "cuMemFree_v2", "cuArrayCreate",
                  "cuArrayCreate_v2", "cuMemcpyHtoD_v2_ptds", "cuInit", "cuLinkCreate_v2"):
            self.assertIn(n, self.names)
        self.assertNotIn("cuMemAlloc_v2_v2", self.names)
        self.assertGreater(len(self.names), 400)

    def test_no_silent_holes(self):
        missing = lep.holes(self.names, self.passthrough)
        self.assertEqual(missing, [],
                         "allocation-related entry points of %s neither wrapped (WRAPPED in "
                         "scripts/list_entry_points.py) nor in shim/passthrough_points.def:\n  %s"
                         % (CUDA_H, "\n  ".join(missing)))

    def test_passthrough_file_format(self):
        self.assertEqual(self.problems, [])
        self.assertGreater(len(self.rows), 0)
        with open(PASSTHROUGH, encoding="utf-8") as f:
            text = f.read()
        self.assertTrue(text.startswith("/*"), "the file starts with its comment header")
        self.assertEqual(re.findall(r"\b[A-Z_]{4,}\(", text.split("*/", 1)[1]),
                         ["PASSTHROUGH("] * len(self.rows), "no other macro than PASSTHROUGH")
        for name, reason in self.rows:
            self.assertTrue(reason.strip(), name)
            self.assertLessEqual(len(reason), 120, "%s: keep the reason short" % name)

    def test_no_name_is_both_wrapped_and_passed_through(self):
        self.assertEqual(sorted(set(self.passthrough) & set(lep.WRAPPED)), [])

    def test_no_stale_rows(self):
        if self.version < DOCUMENTED_VERSION:
            self.skipTest("cuda.h %d is older than %d" % (self.version, DOCUMENTED_VERSION))
        self.assertEqual(lep.stale(self.names, self.passthrough), [])
        self.assertEqual(sorted(n for n in lep.WRAPPED if n not in self.names), [],
                         "WRAPPED names that cuda.h does not declare")

    def test_every_wrapped_symbol_of_the_shim_is_listed(self):
        # shim/entry_points.def may wrap fewer names than WRAPPED while it
        # grows, but never one the list (and so the docs) does not know.
        if not os.path.exists(ENTRY_POINTS):
            self.skipTest("no shim/entry_points.def")
        with open(ENTRY_POINTS, encoding="utf-8") as f:
            exported = re.findall(r'^\s*ENTRY\(\s*"\w+"\s*,\s*"(\w+)"', f.read(), re.M)
        self.assertGreater(len(exported), 0)
        self.assertEqual(sorted(set(n for n in exported if n not in lep.WRAPPED)), [],
                         "wrapped in shim/entry_points.def but not in WRAPPED")

    def test_every_variant_of_a_wrapped_entry_point_is_a_row(self):
        # vg_entry_swap (shim/intercept/entry_table.c) hands out a wrapper for
        # an unexported address by the requested version only up to the
        # CUDA_VERSION the shim is built with: that is sound only if every
        # variant cuda.h declares for a wrapped base name is a row.
        with open(ENTRY_POINTS, encoding="utf-8") as f:
            rows = re.findall(r'^\s*ENTRY\(\s*"(\w+)"\s*,\s*"(\w+)"', f.read(), re.M)
        symbols = set(symbol for _, symbol in rows)
        missing = sorted(n for base in set(b for b, _ in rows) for n in self.names
                         if re.fullmatch(re.escape(base) + r"(_v\d+)?(_ptsz|_ptds)?", n) and n not in symbols)
        self.assertEqual(missing, [], "variants of wrapped entry points that are no row of shim/entry_points.def")

    def test_markdown_is_current(self):
        with open(DOC, encoding="utf-8") as f:
            doc = f.read()
        m = re.search(r"\(CUDA (\d+)\.(\d+)\)", doc)
        self.assertIsNotNone(m, "docs/entry-points.md names its CUDA version")
        if int(m.group(1)) * 1000 + int(m.group(2)) * 10 != self.version:
            self.skipTest("docs/entry-points.md documents another CUDA version")
        self.assertEqual(doc, lep.markdown(self.names, self.version, self.passthrough),
                         "docs/entry-points.md is out of date: run "
                         "scripts/list_entry_points.py --markdown > docs/entry-points.md")
        self.assertNotIn("**HOLE**", doc)

    def run_script(self, *args):
        return subprocess.run([sys.executable, SCRIPT, CUDA_H] + list(args),
                              capture_output=True, text=True, timeout=60)

    def test_script_check_passes(self):
        r = self.run_script("--check", PASSTHROUGH)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_script_check_names_a_missing_row(self):
        with open(PASSTHROUGH, encoding="utf-8") as f:
            lines = f.read().split("\n")
        dropped = 'PASSTHROUGH("cuMemPoolTrimTo", "changes reserve, read at report time")'
        self.assertIn(dropped, lines)
        with tempfile.NamedTemporaryFile("w", suffix=".def", delete=False) as f:
            f.write("\n".join(line for line in lines if line != dropped))
        try:
            r = self.run_script("--check", f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("missing: cuMemPoolTrimTo", r.stdout)

    def test_script_lists_names(self):
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = r.stdout.split()
        self.assertEqual(listed, sorted(listed))
        for n in ("cuMemAlloc_v2", "cuMemPrefetchAsync", "cuMemMapArrayAsync_ptsz", "cuMemGetInfo_v2"):
            self.assertIn(n, listed)
        for n in ("cuMemcpy", "cuMemsetD8_v2", "cuLaunchKernel", "cuInit"):
            self.assertNotIn(n, listed)


if __name__ == "__main__":
    unittest.main()
