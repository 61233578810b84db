"""Copy the default study's figures and tables (Table 1, the measure ranking) into docs/ and
the README."""

import re
import shutil
from pathlib import Path

from rethink.files import atomic_path

def update_docs(figures: list[str], tables: dict[str, str], readme: str, out_dir: str) -> None:
    """Copy `figures` and `tables` into `out_dir`, and put each table (a Markdown file) between
    the README's markers `<!-- {name}:start -->` and `<!-- {name}:end -->`."""
    out_dir = Path(out_dir)
    for path in [*figures, *tables.values()]:
        with atomic_path(out_dir / Path(path).name) as tmp:
            shutil.copyfile(path, tmp)
    text = Path(readme).read_text()
    for name, table_md in tables.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start not in text or end not in text:
            raise ValueError(f"{readme}: no {start} ... {end} markers to put {table_md} between")
        table = Path(table_md).read_text().strip()
        text = re.sub(
            f"{re.escape(start)}.*?{re.escape(end)}", f"{start}\n{table}\n{end}", text, flags=re.S
        )
    with atomic_path(readme) as tmp:
        tmp.write_text(text)
