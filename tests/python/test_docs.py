"""The documentation says only what is there (issue 10 section 4).

- Every Markdown file of the repository that names another Markdown file
  (a link, or a path in backticks) names one inside the repository that
  exists: the README used to send readers to ../shared/DESIGN.md.
- Every variable of the shim's option table (shim/model/config.c) has its
  row in the README's "Environment variables" table and its entry in the
  man page.

Run by the Check runner (tests/python/check_python.c) with VG_ROOT set.
"""
import glob
import os
import re
import unittest

ROOT = os.environ.get("VG_ROOT") or os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))

INSTALLED = ("share/", "$(", "/usr/")     # where make install puts a file: not a repository path
LINK_RE = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
TICKED_MD_RE = re.compile(r"`([^`\s]+\.md)`")


def markdown_files():
    files = [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md"))
    files += glob.glob(os.path.join(ROOT, "tests", "*", "README.md"))
    return sorted(files)


def named_markdown(text):
    """The .md paths a document names: link targets and paths in backticks."""
    names = [t for t in LINK_RE.findall(text) if not re.match(r"^[a-z]+:", t)]
    names += TICKED_MD_RE.findall(text)
    return [n for n in names if n.endswith(".md") and not n.startswith(INSTALLED)]


class DocsName(unittest.TestCase):
    def test_markdown_names_files_inside_the_repository(self):
        root = os.path.realpath(ROOT)
        checked = 0
        for path in markdown_files():
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for name in named_markdown(text):
                checked += 1
                candidates = [os.path.join(os.path.dirname(path), name), os.path.join(ROOT, name)]
                inside = [c for c in candidates
                          if os.path.realpath(c).startswith(root + os.sep)]
                self.assertTrue(inside, "%s names %s, outside the repository" % (path, name))
                self.assertTrue(any(os.path.isfile(c) for c in inside),
                                "%s names %s, which does not exist" % (path, name))
        self.assertGreater(checked, 3)

    def test_the_checker_sees_a_path_outside(self):
        self.assertEqual(named_markdown("See `../shared/DESIGN.md`, `/work/x.md`, [x](docs/cli.md#top) "
                                        "and `share/doc/vramguard/entry-points.md`."),
                         ["docs/cli.md", "../shared/DESIGN.md", "/work/x.md"])


class VariablesDocumented(unittest.TestCase):
    def test_every_variable_of_the_option_table(self):
        with open(os.path.join(ROOT, "shim", "model", "config.c"), encoding="utf-8") as f:
            table = f.read().split("static const struct vg_option options[] = {", 1)[1].split("};", 1)[0]
        names = re.findall(r'\{"(VRAMGUARD_[A-Z_]+)"', table)
        self.assertIn("VRAMGUARD_LOG_LEVEL", names)
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        env = readme.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
        with open(os.path.join(ROOT, "docs", "vramguard.1"), encoding="utf-8") as f:
            man = f.read()
        for name in names:
            self.assertTrue("| `%s` |" % name in env, "README's Environment variables table lacks %s" % name)
            self.assertTrue(".B \\%%%s\n" % name in man, "the man page's ENVIRONMENT lacks %s" % name)


if __name__ == "__main__":
    unittest.main()
