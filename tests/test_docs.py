"""The docs cannot drift from the code (no training, a few seconds): in README.md and docs/*.md every relative link
and #anchor resolves, every `toolkit ...` command in a code block parses with the real argument parser and names
experiments, suites and datasets that exist (a path stands for the user's own data), every table is well
formed, and the README's demo block is what `make demo` printed (docs/demo.csv: the comparison it wrote)."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEMO = ROOT / "docs" / "demo.csv"   # results/last_run.csv of the `make demo` run whose output the README shows
LINK = re.compile(r"(?<!\\)\[[^\]]*\]\(([^)\s]+)\)")
NAME_TAKERS = ("run", "show", "noise", "fidelity", "compare", "list")


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def prose(text: str) -> str:
    """The page without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchors(page: Path) -> set[str]:
    seen, out = {}, set()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(page.read_text()), flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)


def commands(text: str) -> list[str]:
    """`toolkit ...` lines of the code blocks, continuations joined, comments dropped."""
    out = []
    for block in code_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.split(r"\s+#\s", line.strip(), maxsplit=1)[0].strip()
            if line.startswith("toolkit ") and not line.startswith("toolkit |"):
                out.append(line)
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name if p.parent == ROOT else f"docs/{p.name}")
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name if p.parent == ROOT else f"docs/{p.name}")
def test_every_command_parses_and_names_what_exists(page):
    import toolkit_experiments  # noqa: F401
    from toolkit.cli import parser
    from toolkit.data.datasets import DOWNLOADS, EMBEDDED, NAMED_SOURCES
    from toolkit.recipes import components, registry
    datasets = set(EMBEDDED) | set(DOWNLOADS) | set(NAMED_SOURCES)
    wrong = []
    for line in commands(page.read_text()):
        argv = shlex.split(line)[1:]
        try:
            args = parser().parse_args(argv)
        except SystemExit:
            wrong.append(f"{line} (does not parse)")
            continue
        for item in getattr(args, "experiments", None) or []:   # the guide's own example files, from the root
            components.load(str(ROOT / item))
        known = set(registry.list_suites()) | {r.name for r in registry.expand("*")}
        names = getattr(args, "names", None) or ([args.name] if isinstance(getattr(args, "name", None), str) else [])
        if argv[0] in NAME_TAKERS:
            for n in names:
                if not any(re.fullmatch(re.escape(n).replace(r"\*", ".*"), k) for k in known):
                    wrong.append(f"{line} (no experiment or suite {n!r})")
        for d in [getattr(args, k, None) for k in ("dataset", "src", "full")]:
            if d and "/" not in d and d not in datasets:
                wrong.append(f"{line} (no dataset {d!r}; a path stands for the user's own)")
    assert not wrong, f"{page.name}:\n  " + "\n  ".join(wrong)


def _cells(row: str) -> int:
    row = re.sub(r"`[^`]*`", "x", row.strip())
    return len(re.split(r"(?<!\\)\|", row.strip("|")))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name if p.parent == ROOT else f"docs/{p.name}")
def test_every_table_is_well_formed(page):
    """A table: a header, a separator of as many cells (--- with optional colons), rows of as many cells."""
    bad = []
    for text in [prose(page.read_text()), *code_blocks(page.read_text())]:
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            if lines[i].lstrip().startswith("|"):
                block = []
                while i < len(lines) and lines[i].lstrip().startswith("|"):
                    block.append(lines[i])
                    i += 1
                head, *rest = block
                if not rest or not re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*\|?", rest[0].strip()):
                    bad.append(f"no separator under {head.strip()[:60]!r}")
                    continue
                n = _cells(head)
                bad += [f"{_cells(r)} cells, header has {n}: {r.strip()[:60]!r}" for r in rest if _cells(r) != n]
            else:
                i += 1
    assert not bad, f"{page.name}:\n  " + "\n  ".join(bad)


def demo_argv() -> list[str]:
    """The arguments `make demo` gives `toolkit`, read from the Makefile."""
    line = re.search(r"^demo:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    return shlex.split(line)[1:]


def demo_block() -> list[str]:
    """The README's demo block: its lines, the context line first, then the comparison table."""
    text = (ROOT / "README.md").read_text()
    return re.search(r"^What it printed.*?^```\n(.*?)^```", text, flags=re.S | re.M).group(1).splitlines()


def test_the_readme_demo_block_is_what_the_demo_printed():
    """The README names the Makefile's demo command; docs/demo.csv holds that command's settings and the rows of its
    suite with their references, and the code prints it as the README's block, line for line."""
    import toolkit_experiments  # noqa: F401
    from toolkit.cli import parser
    from toolkit.recipes import registry
    from toolkit.report.tables import to_markdown
    argv = demo_argv()
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"`toolkit {' '.join(a for a in argv if a != '--quiet')}`" in readme
    args = parser().parse_args(argv)
    sets = dict(s.split("=", 1) for s in args.set)
    summary = pd.read_csv(DEMO, dtype={"design": object, "models": object})   # empty text columns stay text
    suite = registry.expand(args.names)
    assert list(summary["name"]) == [r.name for r in suite]
    refs = [registry.reference_name(r) for r in suite]
    assert list(summary["reference_name"].fillna("")) == [ref if ref != r.name else "" for r, ref in zip(suite, refs)]
    assert set(summary["dataset"]) == {args.dataset} and set(summary["size"]) == {args.size}
    assert set(summary["epochs"]) == {args.epochs} and set(summary["arch"]) == {sets["arch"]}
    assert set(summary["n"]) == {int(args.seeds)}
    block, printed = demo_block(), to_markdown(summary).splitlines()
    assert block == printed[:len(block)] and printed[len(block)] == ""


def _without_seconds(lines: list[str]) -> list:
    """The block's context line, then its cells less the columns of seconds (they follow the machine's load)."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    keep = [i for i, c in enumerate(cells[0]) if not c.endswith(" s")]
    return [lines[0], *([row[i] for i in keep] for row in cells)]


@pytest.mark.slow
def test_the_demo_prints_the_readme_block_again(tmp_path):
    """`make demo` again (about 3 minutes here): every number but the seconds is the README's. A machine without
    bf16 trains in fp32 and prints other numbers."""
    from toolkit.train import precision
    if precision.choice("cpu")["precision"] != "bf16":
        pytest.skip("this CPU has no bf16: the demo trains in fp32 and prints other numbers than the README's")
    subprocess.run([sys.executable, "-m", "toolkit", *demo_argv(), "--results", str(tmp_path)], check=True, cwd=ROOT)
    block, printed = demo_block(), (tmp_path / "last_run.md").read_text().splitlines()
    assert _without_seconds(printed[:len(block)]) == _without_seconds(block)
