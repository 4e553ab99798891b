"""The README's flag table and `sustaind --help` name the same flags: a flag added to one
and not the other fails the suite instead of leaving users to find it by accident."""
import os
import re
import subprocess

from harness import check, main

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def test(paths):
    help_text = subprocess.run([paths.sustaind, "--help"], capture_output=True, text=True, timeout=10).stdout
    from_help = set(re.findall(r"^\s+(?:-\w,\s*)?(--[a-z][a-z-]*)", help_text, re.MULTILINE)) - {"--help"}
    with open(README) as f:
        rows = [line for line in f if line.startswith("| `--")]
    from_readme = set()
    for row in rows:
        first_cell = row.split("|")[1]
        from_readme |= set(re.findall(r"`(--[a-z][a-z-]*)`", first_cell))
    check(len(from_help) > 10, f"sustaind --help lists its flags ({sorted(from_help)})")
    check(from_help - from_readme == set(), f"every flag of --help is in the README's table: missing {sorted(from_help - from_readme)}")
    check(from_readme - from_help == set(), f"every flag in the README's table exists: unknown {sorted(from_readme - from_help)}")


if __name__ == "__main__":
    main(test)
