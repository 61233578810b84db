"""Copy the default study's figures and Table 1 into docs/ and the README."""

import re
import shutil
from pathlib import Path

from rethink.files import atomic_path

START, END = "<!-- table1:start -->", "<!-- table1:end -->"


def update_docs(figures: list[str], table1_md: str, readme: str, out_dir: str) -> None:
    """Copy `figures` into `out_dir` and put Table 1 between the README's table1 markers."""
    out_dir = Path(out_dir)
    for figure in figures:
        with atomic_path(out_dir / Path(figure).name) as tmp:
            shutil.copyfile(figure, tmp)
    with atomic_path(out_dir / "table1.md") as tmp:
        shutil.copyfile(table1_md, tmp)
    text = Path(readme).read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: no {START} ... {END} markers to put Table 1 between")
    table = Path(table1_md).read_text().strip()
    text = re.sub(
        f"{re.escape(START)}.*?{re.escape(END)}", f"{START}\n{table}\n{END}", text, flags=re.S
    )
    with atomic_path(readme) as tmp:
        tmp.write_text(text)
