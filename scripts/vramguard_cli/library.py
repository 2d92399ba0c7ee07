"""The shim library: where it is (relative to the entry script, or where
make install put it) and whether ld.so can preload it."""

import os
import re
import shutil
import subprocess

from .common import GuardError, signal_name


def library_candidates(script, installed_library):
    """`script`: the entry script's path; `installed_library`: the path make
    install wrote into it ("" in a source tree)."""
    here = os.path.dirname(os.path.realpath(os.path.abspath(script)))
    found = [os.path.normpath(os.path.join(here, "..", "build", "libvramguard.so")),
             os.path.normpath(os.path.join(here, "..", "lib", "vramguard", "libvramguard.so"))]
    if installed_library and installed_library not in found:
        found.append(installed_library)      # LIBDIR given to make install
    return found


def find_library(script, installed_library):
    override = os.environ.get("VRAMGUARD_LIBRARY", "")
    if override:
        path = os.path.abspath(override)
        if not os.path.isfile(path):
            raise GuardError("VRAMGUARD_LIBRARY=%s: no such file" % override)
    else:
        candidates = library_candidates(script, installed_library)
        for path in candidates:
            if os.path.isfile(path):
                break
        else:
            raise GuardError("libvramguard.so not found (looked for %s); build it with "
                             "'make' or set VRAMGUARD_LIBRARY to its path"
                             % " and ".join(candidates))
    if re.search(r"[\s:]", path):
        raise GuardError("%s cannot be put in LD_PRELOAD (its path contains a space or "
                         "a colon); move it or set VRAMGUARD_LIBRARY to another path" % path)
    check_preloadable(path)
    return path


def check_preloadable(path):
    """Load the library into /bin/true; ld.so tells us if it cannot be preloaded."""
    true = "/bin/true" if os.access("/bin/true", os.X_OK) else shutil.which("true")
    if not true:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = path
    env.pop("VRAMGUARD_REPORT", None)
    try:
        res = subprocess.run([true], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GuardError("cannot check %s: %s" % (path, exc))
    err = res.stderr.decode("utf-8", "replace")
    if "cannot be preloaded" in err or "ERROR: ld.so" in err:
        line = next((l for l in err.splitlines() if "ld.so" in l or "preload" in l),
                    err.strip())
        raise GuardError("%s cannot be preloaded: %s" % (path, line.strip()))
    if res.returncode != 0:
        how = ("was killed by %s" % signal_name(-res.returncode) if res.returncode < 0
               else "exited with status %d" % res.returncode)
        raise GuardError("%s is broken: %s %s with it preloaded" % (path, true, how))
