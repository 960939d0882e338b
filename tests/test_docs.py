"""The Python in the documentation runs: every ```python block of a page, in order, in one
namespace per page, in an empty folder (as a reader pasting them into one script would)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Pages whose Python blocks are run.
PAGES = ["README.md", "docs/api.md"]

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text, in order."""
    return _BLOCK.findall(text)


def test_block_extraction() -> None:
    text = "x\n```python\na = 1\n```\n```\nshell\n```\n```python\nb = a + 1\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = a + 1\n"]


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks((ROOT / page).read_text())
    assert blocks, f"{page} has no ```python block"
    monkeypatch.chdir(tmp_path)
    # Run as a script would be: `if __name__ == "__main__":` blocks run too.
    namespace: dict[str, object] = {"__name__": "__main__"}
    for n, block in enumerate(blocks):
        code = compile(block, f"{page}, python block {n + 1}", "exec")
        exec(code, namespace)  # the documentation's own examples


def test_outputs_page_states_the_build_folder(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    # docs/outputs.md: $ARITHFORGE_BUILD when set and not empty, else build/ of the checkout;
    # the synthesis cache is <build>/synth-cache.
    from arithforge.costmodel.synth import cache_dir
    from arithforge.tools.build import build_dir

    page = (ROOT / "docs" / "outputs.md").read_text()
    for path in ("ARITHFORGE_BUILD", "~/.cache/arithforge", "<build>/synth-cache",
                 "<build>/harness/", "results/explore"):
        assert path in page
    monkeypatch.setenv("ARITHFORGE_BUILD", str(tmp_path))
    assert (build_dir(), cache_dir()) == (tmp_path, tmp_path / "synth-cache")
    monkeypatch.setenv("ARITHFORGE_BUILD", "")
    assert build_dir() == ROOT / "build"  # the tests run from this checkout


def test_outputs_page_states_the_explore_default(capsys: pytest.CaptureFixture[str]) -> None:
    from arithforge.cli import main

    with pytest.raises(SystemExit):
        main(["explore", "--help"])
    assert "(default results/explore)" in " ".join(capsys.readouterr().out.split())
