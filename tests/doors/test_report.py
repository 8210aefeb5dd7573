"""The report door: a static page of every figure, a runs table per notebook, the banner; in Chromium."""

import json
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from photostyle_lib.doors import cli
from photostyle_lib.io.images import STAND_IN_BANNER


@pytest.fixture
def profile(tmp_path):
    root = tmp_path / "ci"
    for nb, fig in (("01_a", "figure1"), ("02_b", "figure3")):
        d = root / nb
        d.mkdir(parents=True)
        Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(d / f"{fig}.png")
        (d / f"{nb}.ipynb").write_text("{}")
        md = {"notebook": nb, "parameters": {"size": 64}, "warning": STAND_IN_BANNER,
              "figures": [{"name": fig, "title": [f"Figure {fig[-1]}"], "file": f"{fig}.png", "caption": "c <&>",
                           "weights_warning": STAND_IN_BANNER}],
              "runs": [{"key": "k1", "spec": {"pair_id": 8, "method": "full", "masks": "soft"},
                        "weights": "hed-vgg16", "stop_reason": "iterations", "wall_seconds": 1.5}]}
        (d / "metadata.json").write_text(json.dumps(md))
    return root


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        if tag == "a":
            self.links.append(a["href"])

    def handle_data(self, data):
        self.text.append(data)


def test_report_lists_every_figure_run_and_notebook(profile, capsys):
    assert cli.main(["report", str(profile)]) == 0
    page = (profile / "index.html").read_text()
    p = _Collect()
    p.feed(page)
    assert sorted(p.imgs) == ["01_a/figure1.png", "02_b/figure3.png"]
    assert all((profile / s).is_file() for s in p.imgs + p.links)
    assert sorted(p.links) == ["01_a/01_a.ipynb", "02_b/02_b.ipynb"]
    text = " ".join(p.text)
    assert STAND_IN_BANNER in text and "iterations" in text and "hed-vgg16" in text and "c <&>" in text


def test_report_of_an_empty_folder_is_one_line(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "metadata.json" in err and err.count("\n") == 1


def test_report_in_headless_chromium(profile, tmp_path):
    """Chromium loads the page: every <img> decoded (naturalWidth > 0), the banner present."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    assert cli.main(["report", str(profile)]) == 0
    page = profile / "index.html"
    probe = ("<script>window.addEventListener('load', () => { const r = document.createElement('pre');"
             "r.id = 'probe'; r.textContent = JSON.stringify({imgs: [...document.images].map(i => i.naturalWidth),"
             "banner: !!document.getElementById('weights-banner')}); document.body.appendChild(r); });</script>")
    page.write_text(page.read_text().replace("</body>", probe + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             f"--user-data-dir={tmp_path / 'chrome'}"]
    shot = subprocess.run([exe, *flags, f"--screenshot={tmp_path / 'shot.png'}", "--window-size=1200,900",
                           page.as_uri()], capture_output=True, timeout=120)
    assert (tmp_path / "shot.png").exists(), shot.stderr[-2000:]
    dom = subprocess.run([exe, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    start = dom.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    probe_out = json.loads(dom.stdout[start:dom.stdout.index("</pre>", start)])
    assert probe_out["banner"] is True
    assert probe_out["imgs"] == [30, 30]  # both figures decoded at their width
    with Image.open(tmp_path / "shot.png") as im:
        assert im.size == (1200, 900)


def test_report_never_replaces_a_figure_nor_a_hand_written_page(profile, capsys):
    """Issue 37, case 3: -o FIG.png is refused (a figure never becomes HTML); a hand-written index.html
    is refused without --overwrite (an earlier report is refreshed freely); a page over a file the
    report reads is refused even with --overwrite. Each: one line, exit 2, the file intact."""
    fig = profile / "01_a" / "figure1.png"
    before = fig.read_bytes()
    for argv in (["report", str(profile), "-o", str(fig)], ["report", str(profile), "-o", str(fig), "--overwrite"]):
        assert cli.main(argv) == 2
        assert "must end in .html" in capsys.readouterr().err
    assert fig.read_bytes() == before
    page = profile / "index.html"
    page.write_text("<html>my own notes</html>")
    assert cli.main(["report", str(profile)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and err.count("\n") == 1
    assert page.read_text() == "<html>my own notes</html>"
    assert cli.main(["report", str(profile), "--overwrite"]) == 0
    assert cli.main(["report", str(profile)]) == 0          # our own page: refreshed without --overwrite
    (profile / "01_a" / "figure1.html").write_text("x")
    md = json.loads((profile / "01_a" / "metadata.json").read_text())
    md["figures"].append({"name": "f", "file": "figure1.html"})
    (profile / "01_a" / "metadata.json").write_text(json.dumps(md))
    assert cli.main(["report", str(profile), "-o", str(profile / "01_a" / "figure1.html"), "--overwrite"]) == 2
    assert "never replaces an input" in capsys.readouterr().err


def test_report_after_a_failed_rerun_says_so_and_exits_2(profile, capsys):
    """Issue 37, case 6: a notebook whose last run failed (runner's run_status.json) keeps its earlier
    figures on the page under a notice naming the failure, and the command ends with one line, exit 2."""
    from photostyle_lib.doors.report import RUN_STATUS_FILE

    (profile / "01_a" / RUN_STATUS_FILE).write_text(json.dumps({"status": "failed", "error": "cell [3] boom"}))
    (profile / "02_b" / RUN_STATUS_FILE).write_text(json.dumps({"status": "ok"}))
    assert cli.main(["report", str(profile)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "01_a (failed: cell [3] boom)" in err and "02_b" not in err
    page = (profile / "index.html").read_text()
    assert "The last run of this notebook failed: cell [3] boom" in page and page.count("earlier run") == 1
    (profile / "01_a" / RUN_STATUS_FILE).write_text(json.dumps({"status": "running"}))
    assert cli.main(["report", str(profile)]) == 2
    assert "did not finish" in capsys.readouterr().err
    (profile / "01_a" / RUN_STATUS_FILE).write_text(json.dumps({"status": "ok"}))
    assert cli.main(["report", str(profile)]) == 0
