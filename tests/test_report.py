"""A tiny study end to end: figures, tables, the HTML report seen in a real browser, docs."""

import os
import shutil
import subprocess

import pytest
import yaml
from PIL import Image

from rethink.results.catalog import FIGURES
from tests.conftest import REPO, run_snakemake

TINY = {
    "datasets": ["mnist5k"],
    "variants": {"names": ["true", "random", "corrupt0.5", "gaussian"]},
    "runs": [
        {"models": ["mlp1x512"], "regularizers": ["none"], "seeds": [0, 1]},
        {"models": ["mlp1x512"], "variants": ["true"], "regularizers": ["wd"], "seeds": [0, 1]},
        {"models": ["inception", "inception-nobn"], "variants": ["true"]},
        # a sweep, for the regularizers-vs-memorization figure
        {"models": ["mlp1x512"], "variants": ["corrupt0.5"], "regularizers": ["dropout0.25"]},
    ],
    "training": {
        "max_epochs": 3, "train_subset": 256, "test_subset": 256, "record_examples": True,
        "models": {
            "inception": {"max_epochs": 2}, "inception-nobn": {"max_epochs": 2},
            "mlp1x512": {"critical_examples": 8, "critical_iterations": 5},
        },
    },
    "measures": {"enabled": True, "search_images": 32, "bisection_steps": 1, "ascent_steps": 1},
}  # fmt: skip

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    shutil.copy(REPO / "README.md", workdir / "README.md")
    result = run_snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_every_figure_and_table1_is_produced(tiny_study):
    for name in FIGURES:
        for ext in ("png", "pdf", "csv"):
            assert (tiny_study / "results" / "figures" / "mnist5k" / f"{name}.{ext}").exists()
    for ext in ("csv", "md", "tex"):
        assert (tiny_study / "results" / "tables" / "mnist5k" / f"table1.{ext}").exists()
    assert (tiny_study / "results" / "tables" / "runs.csv").exists()
    for name in ("memorization-examples", "memorization-epochs", "critical-samples"):
        assert (tiny_study / "results" / "tables" / "mnist5k" / f"{name}.csv").exists()


def show_result_script(suffix: str) -> str:
    """JavaScript that opens the report's result whose path ends with `suffix`."""
    return f"""<script>
    setTimeout(() => {{
        const path = Object.keys(results).find(p => p.endsWith("{suffix}"));
        app.setView({{navbarMode: "resultinfo", resultPath: path, content: "img",
                      contentPath: results[path].data_uri}});
    }}, 200);
    </script></body>"""


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium package"
)
def test_report_embeds_every_figure_and_renders_them_in_chromium(tiny_study):
    assert CHROMIUM, "chromium is missing: .ci/run installs Debian's chromium package"
    report = tiny_study / "results" / "report.html"
    result = run_snakemake(tiny_study, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text()
    for name in FIGURES:
        assert f"mnist5k/{name}.png" in html
    assert "table1.md" in html and "Matches Fig. 1c of Zhang et al." in html
    assert "consistency.md" in html and "After Toneva et al. (2019), Fig. 1" in html

    # seaborn's palette draws the lines: its first colour for fig1c's one model, and the second
    # too for fig2b's two. Found in the screenshot, they show the figure is on screen; the
    # report's landing page, a negative control, has neither.
    blue, orange = (76, 114, 176), (221, 132, 82)
    assert not {blue, orange} & screenshot_colours(report, tiny_study / "landing.png")
    for name, line_colours in (("fig1c", {blue}), ("fig2b", {blue, orange})):
        page = tiny_study / f"view-{name}.html"
        head, _, tail = html.rpartition("</body>")  # the page's own, not one inside its scripts
        page.write_text(head + show_result_script(f"{name}.png") + tail)
        assert line_colours <= screenshot_colours(page, tiny_study / f"{name}.png"), name


def screenshot_colours(page, shot) -> set:
    """The colours of headless Chromium's screenshot of `page`."""
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={shot.parent / 'chromium'}", "--window-size=1400,1000",
         "--virtual-time-budget=5000", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return {colour for _, colour in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)}


@pytest.mark.slow
def test_docs_target_copies_figures_and_puts_table1_in_the_readme(tiny_study):
    result = run_snakemake(tiny_study, "--cores", "1", "docs")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("fig1a", "fig1b", "fig1c"):
        assert (tiny_study / "docs" / f"{name}.png").exists()
    readme = (tiny_study / "README.md").read_text()
    table = (tiny_study / "results" / "tables" / "mnist5k" / "table1.md").read_text().strip()
    assert f"<!-- table1:start -->\n{table}\n<!-- table1:end -->" in readme
