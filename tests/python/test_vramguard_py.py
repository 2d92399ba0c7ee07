"""Tests of purpose_tags/python/vramguard.py (standard library only).

Without the shim (this process): every function is a harmless no-op, an
invalid purpose is still a ValueError, and the ctypes struct has the C
header's layout. With the shim: the ShimChild cases run in a subprocess with
LD_PRELOAD=$VG_BUILD/libvramguard.so and the fake CUDA runtime
($VG_BUILD/fakecuda), started by WithShim. Build first:
`make fakecuda build/libvramguard.so`.

    VG_BUILD=build python3 -m unittest -v tests/python/test_vramguard_py.py
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.environ.get("VG_ROOT") or os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("VG_BUILD") or "build"
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
PYDIR = os.path.join(ROOT, "purpose_tags", "python")
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

import vramguard  # noqa: E402

MiB = 1 << 20
CHILD = os.environ.get("VG_PY_CHILD") == "1"
ZERO_PURPOSES = {"unknown": 0, "weights": 0, "kv_cache": 0, "intermediate": 0}


class NoShim(unittest.TestCase):
    """This process, without LD_PRELOAD of the shim."""

    def setUp(self):
        if vramguard.loaded():
            self.skipTest("the shim is loaded in this process (run without LD_PRELOAD)")

    def test_not_loaded(self):
        self.assertFalse(vramguard.loaded())
        self.assertIsNone(vramguard.version())
        self.assertIsNone(vramguard.usage())
        self.assertEqual(vramguard.report(), "")
        self.assertEqual(vramguard.verify_residency(), 0)
        self.assertEqual(vramguard.push("weights"), 0)
        self.assertEqual(vramguard.push(vramguard.KV_CACHE, "label"), 0)
        self.assertEqual(vramguard.pop(), 0)

    def test_purpose_is_a_do_nothing_context_manager(self):
        for p in ("unknown", "weights", "kv_cache", "intermediate",
                  vramguard.UNKNOWN, vramguard.WEIGHTS, vramguard.KV_CACHE, vramguard.INTERMEDIATE):
            with vramguard.purpose(p, "l") as scope:
                self.assertIsInstance(scope, vramguard.purpose)
        with self.assertRaises(KeyError):
            with vramguard.purpose("kv_cache"):
                raise KeyError("propagates")

    def test_purpose_as_decorator(self):
        @vramguard.purpose("weights", label="load")
        def load(x):
            return x * 2
        self.assertEqual(load(21), 42)

    def test_invalid_purpose(self):
        for bad in ("bogus", "KV_CACHE", "", 4, -1, 7, True, None, 1.0, b"weights"):
            with self.assertRaises(ValueError, msg=repr(bad)):
                vramguard.purpose(bad)
            with self.assertRaises(ValueError, msg=repr(bad)):
                vramguard.push(bad)
        with self.assertRaises(TypeError):
            vramguard.purpose("weights", label=3)

    def test_label_with_frame(self):
        """The label names the line that opened the scope; a long label is
        cut at a character boundary so that the line stays within the
        shim's 63 bytes."""
        self.assertEqual(vramguard._label_with_frame(b"kv", "serve.py:42"), b"kv @ serve.py:42")
        self.assertEqual(vramguard._label_with_frame(None, "serve.py:42"), b"@ serve.py:42")
        self.assertEqual(vramguard._label_with_frame(b"kv", None), b"kv")
        long = vramguard._label_with_frame("\u00e9".encode("utf-8") * 40, "serve.py:42")
        self.assertLessEqual(len(long), vramguard.LABEL_MAX)
        self.assertTrue(long.endswith(b" @ serve.py:42"), long)
        long.decode("utf-8")                    # no character cut in half
        here = sys._getframe().f_lineno + 1
        self.assertEqual(vramguard._opened_at(), "test_vramguard_py.py:%d" % here)

    def test_constants(self):
        self.assertEqual((vramguard.UNKNOWN, vramguard.WEIGHTS, vramguard.KV_CACHE,
                          vramguard.INTERMEDIATE), (0, 1, 2, 3))
        self.assertEqual(vramguard.PURPOSES, ("unknown", "weights", "kv_cache", "intermediate"))
        self.assertEqual(vramguard.KINDS, ("device", "host_pinned", "managed", "pool", "vmm",
                                           "array", "host_registered", "imported"))

    def test_struct_layout(self):
        u = vramguard._Usage
        self.assertEqual(ctypes.sizeof(u), 8 + 4 + 4 + 3 * 8 + 8 * 8 + 16 * 8 * 8 * 3 * 8 + 3 * 16 * 8)
        self.assertEqual(u.charged_bytes.offset, 104 + 16 * 8 * 8 * 3 * 8)
        self.assertEqual([u.size.offset, u.device_count.offset, u.reserved.offset,
                          u.vram_bytes.offset, u.violations.offset, u.oom_events.offset,
                          u.purpose_bytes.offset, u.cell.offset],
                         [0, 8, 12, 16, 24, 32, 40, 104])
        x = u()
        self.assertEqual(len(x.cell), 16)
        self.assertEqual(len(x.cell[0]), 8)
        self.assertEqual(len(x.cell[0][0]), 8)
        # cell[d][k][p] is row-major, as in C
        base = ctypes.addressof(x)
        self.assertEqual(ctypes.addressof(x.cell[1][2][3]) - base, 104 + ((1 * 8 + 2) * 8 + 3) * 24)

    def test_struct_matches_the_c_header(self):
        cc = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")
        if cc is None:
            self.skipTest("no C compiler")
        src = r"""
#include <stddef.h>
#include <stdio.h>
#include "vramguard.h"
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n", sizeof(struct vramguard_usage),
           offsetof(struct vramguard_usage, device_count), offsetof(struct vramguard_usage, reserved),
           offsetof(struct vramguard_usage, vram_bytes), offsetof(struct vramguard_usage, violations),
           offsetof(struct vramguard_usage, oom_events), offsetof(struct vramguard_usage, purpose_bytes),
           offsetof(struct vramguard_usage, cell), offsetof(struct vramguard_usage, cell[1][2][3]),
           sizeof(struct vramguard_cell));
    printf("%d %d %d %d %d %d %d %d %d %d\n", VRAMGUARD_UNKNOWN, VRAMGUARD_WEIGHTS, VRAMGUARD_KV_CACHE,
           VRAMGUARD_INTERMEDIATE, VRAMGUARD_KIND_DEVICE, VRAMGUARD_KIND_HOST_PINNED,
           VRAMGUARD_KIND_MANAGED, VRAMGUARD_MAX_DEVICES, VRAMGUARD_KIND_SLOTS, VRAMGUARD_PURPOSE_SLOTS);
    return 0;
}
"""
        with tempfile.TemporaryDirectory() as tmp:
            c = os.path.join(tmp, "layout.c")
            exe = os.path.join(tmp, "layout")
            with open(c, "w") as f:
                f.write(src)
            subprocess.run([cc, "-std=c11", "-I", os.path.join(ROOT, "purpose_tags"), "-o", exe, c, "-ldl"],
                           check=True, capture_output=True)
            lines = subprocess.run([exe], check=True, capture_output=True, text=True).stdout.split("\n")
        u = vramguard._Usage
        self.assertEqual([int(v) for v in lines[0].split()],
                         [ctypes.sizeof(u), u.device_count.offset, u.reserved.offset, u.vram_bytes.offset,
                          u.violations.offset, u.oom_events.offset, u.purpose_bytes.offset, u.cell.offset,
                          u.cell.offset + ((1 * 8 + 2) * 8 + 3) * ctypes.sizeof(vramguard._Cell),
                          ctypes.sizeof(vramguard._Cell)])
        self.assertEqual([int(v) for v in lines[1].split()],
                         [vramguard.UNKNOWN, vramguard.WEIGHTS, vramguard.KV_CACHE, vramguard.INTERMEDIATE,
                          vramguard.KINDS.index("device"), vramguard.KINDS.index("host_pinned"),
                          vramguard.KINDS.index("managed"), vramguard.MAX_DEVICES, vramguard.KIND_SLOTS,
                          vramguard.PURPOSE_SLOTS])


@unittest.skipIf(CHILD, "parent side only")
class WithShim(unittest.TestCase):
    """Runs ShimChild in a subprocess under LD_PRELOAD of the shim."""

    def test_under_the_shim(self):
        shim = os.path.join(BUILD, "libvramguard.so")
        fake = os.path.join(BUILD, "fakecuda")
        for path in (shim, os.path.join(fake, "libcudart.so.13"), os.path.join(fake, "libcuda.so.1")):
            self.assertTrue(os.path.exists(path),
                            "%s is missing: run `make fakecuda build/libvramguard.so` (VG_BUILD=%s)" % (path, BUILD))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VRAMGUARD_")}
        env.update({
            "LD_PRELOAD": shim,
            "LD_LIBRARY_PATH": fake,
            "PYTHONPATH": os.pathsep.join([PYDIR, HERE]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "VG_PY_CHILD": "1",
            "VG_ROOT": ROOT,
            "VG_BUILD": BUILD,
        })
        r = subprocess.run([sys.executable, "-m", "unittest", "-v", "test_vramguard_py.ShimChild"],
                           cwd=HERE, env=env, capture_output=True, text=True, timeout=120)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, "child under the shim failed:\n" + out)
        self.assertIn("OK", out)
        self.assertNotIn("skipped", out.split("Ran ")[-1], "child skipped tests:\n" + out)


@unittest.skipUnless(CHILD, "runs under LD_PRELOAD of the shim, started by WithShim")
class ShimChild(unittest.TestCase):
    rt = None

    @classmethod
    def setUpClass(cls):
        rt = ctypes.CDLL("libcudart.so.13")
        rt.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        rt.cudaMalloc.restype = ctypes.c_int
        rt.cudaFree.argtypes = [ctypes.c_void_p]
        rt.cudaFree.restype = ctypes.c_int
        cls.rt = rt

    def setUp(self):
        self.live = []
        self.assertTrue(vramguard.loaded(), "the shim is not loaded (LD_PRELOAD?)")
        u = vramguard.usage()
        self.assertIsNotNone(u)
        self.assertEqual(u["purpose_bytes"], ZERO_PURPOSES, "allocations left over by an earlier test")

    def tearDown(self):
        for p in self.live:
            self.rt.cudaFree(p)
        self.assertEqual(vramguard.push("unknown"), 1, "a test left a purpose pushed")
        self.assertEqual(vramguard.pop(), 0)

    def malloc(self, size):
        p = ctypes.c_void_p()
        self.assertEqual(self.rt.cudaMalloc(ctypes.byref(p), size), 0)
        self.assertTrue(p.value)
        self.live.append(p.value)
        return p.value

    def free(self, p):
        self.assertEqual(self.rt.cudaFree(p), 0)
        self.live.remove(p)

    def purposes(self):
        return vramguard.usage()["purpose_bytes"]

    def test_version(self):
        v = vramguard.version()
        self.assertIsInstance(v, str)
        self.assertTrue(v)

    def test_purpose_bytes_exact(self):
        self.malloc(1 * MiB)
        with vramguard.purpose("kv_cache", "kv"):
            kv = self.malloc(3 * MiB)
        self.malloc(2 * MiB)
        u = vramguard.usage()
        self.assertEqual(u["purpose_bytes"], dict(ZERO_PURPOSES, unknown=3 * MiB, kv_cache=3 * MiB))
        self.assertEqual(u["vram_bytes"], 6 * MiB)
        self.assertEqual(u["violations"], 0)
        self.assertEqual(u["oom_events"], 0)
        self.assertEqual(sorted(u["devices"]), [0])
        cells = u["devices"][0]["device"]
        self.assertEqual(cells["kv_cache"]["live_bytes"], 3 * MiB)
        self.assertEqual(cells["kv_cache"]["live_count"], 1)
        self.assertGreaterEqual(cells["kv_cache"]["peak_bytes"], 3 * MiB)
        self.assertEqual(cells["unknown"]["live_bytes"], 3 * MiB)
        self.assertEqual(cells["unknown"]["live_count"], 2)
        for name, cell in cells.items():            # all-zero cells are not listed
            self.assertTrue(any(cell.values()), name)
        self.assertEqual(set(u["devices"][0]), {"device"})   # nor are kinds without a cell
        self.free(kv)
        u = vramguard.usage()
        self.assertEqual(u["purpose_bytes"], dict(ZERO_PURPOSES, unknown=3 * MiB))
        after = u["devices"][0]["device"]["kv_cache"]   # kept: its peak is not zero
        self.assertEqual((after["live_bytes"], after["live_count"]), (0, 0))
        self.assertGreaterEqual(after["peak_bytes"], 3 * MiB)

    def test_exception_inside_the_block_still_pops(self):
        with self.assertRaises(RuntimeError):
            with vramguard.purpose("weights", "w"):
                self.malloc(1 * MiB)
                raise RuntimeError("boom")
        self.malloc(2 * MiB)
        self.assertEqual(self.purposes(), dict(ZERO_PURPOSES, weights=1 * MiB, unknown=2 * MiB))

    def test_nesting(self):
        with vramguard.purpose(vramguard.KV_CACHE):
            with vramguard.purpose("intermediate", "scratch"):
                self.malloc(1 * MiB)
            self.malloc(2 * MiB)
        self.malloc(4 * MiB)
        self.assertEqual(self.purposes(),
                         dict(ZERO_PURPOSES, intermediate=1 * MiB, kv_cache=2 * MiB, unknown=4 * MiB))

    def test_push_pop_depth(self):
        self.assertEqual(vramguard.push("weights"), 1)
        self.assertEqual(vramguard.push(vramguard.INTERMEDIATE, "x"), 2)
        self.malloc(1 * MiB)
        self.assertEqual(vramguard.pop(), 1)
        self.malloc(2 * MiB)
        self.assertEqual(vramguard.pop(), 0)
        self.assertEqual(self.purposes(), dict(ZERO_PURPOSES, intermediate=1 * MiB, weights=2 * MiB))

    def test_invalid_purpose_pushes_nothing(self):
        with self.assertRaises(ValueError):
            vramguard.purpose("bogus")
        with self.assertRaises(ValueError):
            vramguard.push(9)
        with self.assertRaises(ValueError):
            with vramguard.purpose("weights"):
                with vramguard.purpose("nonsense"):
                    pass
        self.malloc(1 * MiB)
        self.assertEqual(self.purposes(), dict(ZERO_PURPOSES, unknown=1 * MiB))

    def test_decorator(self):
        scope = vramguard.purpose(vramguard.WEIGHTS, label="layer")

        @scope
        def load(depth):
            self.malloc(1 * MiB)
            if depth:
                load(depth - 1)       # one instance, entered recursively
        load(2)
        self.malloc(1 * MiB)
        self.assertEqual(self.purposes(), dict(ZERO_PURPOSES, weights=3 * MiB, unknown=1 * MiB))

    def test_tags_are_per_thread(self):
        results = []

        def worker():
            try:
                self.malloc(1 * MiB)                    # main thread's tag does not apply
                with vramguard.purpose("weights", "thread"):
                    self.malloc(2 * MiB)
            except BaseException as e:                  # reported below
                results.append(e)

        with vramguard.purpose("kv_cache", "main"):
            t = threading.Thread(target=worker)
            t.start()
            t.join()
            self.malloc(4 * MiB)
        self.assertEqual(results, [])
        self.assertEqual(self.purposes(),
                         dict(ZERO_PURPOSES, unknown=1 * MiB, weights=2 * MiB, kv_cache=4 * MiB))

    def test_label_text(self):
        with vramguard.purpose("kv_cache", "couche-\u00e9"):
            self.malloc(1 * MiB)
        with vramguard.purpose("kv_cache", b"bytes-label"):
            self.malloc(1 * MiB)
        self.assertEqual(self.purposes(), dict(ZERO_PURPOSES, kv_cache=2 * MiB))

    def test_report(self):
        with vramguard.purpose("kv_cache", "kv"):
            self.malloc(5 * MiB)
        text = vramguard.report()
        self.assertIn("kv_cache", text)
        self.assertIn("5.0 MiB", text)
        self.assertFalse(text.endswith("\0"))
        saved = vramguard._REPORT_START
        vramguard._REPORT_START = 16            # force the grow-and-retry path
        try:
            small_start = vramguard.report()
        finally:
            vramguard._REPORT_START = saved
        self.assertEqual(small_start.split("\n", 1)[1], text.split("\n", 1)[1])
        self.assertIn("kv_cache", small_start)

    def test_scope_line_beside_the_allocation(self):
        """The line that opened the scope is in the label, shown beside each
        allocation: a with statement, a decorated function's call, push()."""
        at_with = sys._getframe().f_lineno + 1
        with vramguard.purpose("kv_cache", "kv"):
            self.malloc(3 * MiB)

        @vramguard.purpose("weights")
        def load():
            self.malloc(2 * MiB)
        at_call = sys._getframe().f_lineno + 1
        load()
        at_push = sys._getframe().f_lineno + 1
        vramguard.push("intermediate", "scratch")
        self.malloc(1 * MiB)
        vramguard.pop()
        with vramguard.purpose("kv_cache", "plain", frame=False):
            self.malloc(4 * MiB)
        text = vramguard.report()
        me = os.path.basename(__file__)
        for want in ('"kv @ %s:%d"' % (me, at_with), '"@ %s:%d"' % (me, at_call),
                     '"scratch @ %s:%d"' % (me, at_push), '"plain" '):
            self.assertIn(want, text)
        self.assertEqual(self.purposes(), dict(ZERO_PURPOSES, kv_cache=7 * MiB, weights=2 * MiB,
                                               intermediate=1 * MiB))

    def test_verify_residency(self):
        with vramguard.purpose("weights"):
            self.malloc(1 * MiB)
        self.malloc(1 * MiB)
        self.assertEqual(vramguard.verify_residency(), 0)


if __name__ == "__main__":
    unittest.main()
