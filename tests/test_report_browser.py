"""Open the rendered report in headless chromium: sections present, no script errors, the layout at
1400 px, at phone width (420 px) and printed on A4, with screenshots and the printed PDF.

The screenshots (1400 px and 420 px PNG) and the PDF of both languages are written to the test's
temporary folder and copied to ``test-artifacts/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import html as htmllib
import json
import os
import re
import select
import shutil
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from leadtier.pipelines import report
from leadtier.pipelines.config import load_config

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = (
    "call-first",
    "worklist",
    "summary",
    "playbook",
    "top-customers",
    "segments",
    "tier-segment",
    "model-card",
    "migration",
    "drift",
)
PHONE, DESKTOP = 420, 1400
A4_CONTENT_PX = round((210 - 2 * 10) / 25.4 * 96)  # A4 width less the report's 10 mm side margins, in CSS px
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=5000",
]

if CHROMIUM is None:  # pragma: no cover - the project's setup installs chromium
    pytest.skip("headless chromium is not installed (`chromium` is not on PATH)", allow_module_level=True)


def _synthetic_context(lang: str) -> dict:
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    scheme = cfg.scheme
    rng = np.random.default_rng(7)
    n = 500
    codes = np.array(scheme.codes)
    tiers = codes[rng.choice(len(codes), n, p=[0.1, 0.15, 0.25, 0.3, 0.2])]
    proba = rng.dirichlet(np.ones(len(codes)), n)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "tier": tiers,
            "score": scheme.score(proba),
            "segment_id": rng.integers(0, 3, n),
            "model_version": "3",
            "as_of": pd.Timestamp("2026-06-30").date(),
            "email": "planted@example.com",
            "reasons": "+ many quote requests in 30 days; - no purchase in 180 days",
        }
    )
    for i, c in enumerate(codes):
        frame[f"proba_{c}"] = proba[:, i]
    names = {
        0: {"en": "recent buyers, frequent, high spend", "zh": "近期购买、高频、高消费"},
        1: {"en": "quiet, lapsed buyers", "zh": "互动少、久未购买"},
        2: {"en": "highly engaged, new", "zh": "互动活跃、新客户"},
    }
    profile = pd.DataFrame(
        {
            "size": [100, 250, 150],
            "rfm_recency_days": [14, 320, 60],
            "rfm_frequency": [11, 0, 1],
            "rfm_monetary": [10055.0, 0.0, 800.0],
            "ix_count_30d": [2, 0, 9],
            "cust_tenure_days": [900, 700, 40],
        }
    )
    metrics = {
        "model": {"macro_f1": 0.62, "balanced_accuracy": 0.62, "qwk": 0.75, "log_loss": 1.35},
        "logreg": {"macro_f1": 0.61, "balanced_accuracy": 0.62, "qwk": 0.72, "log_loss": 1.03},
        "majority": {"macro_f1": 0.08, "balanced_accuracy": 0.2, "qwk": 0.0, "log_loss": 1.59},
    }
    migration = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "previous_tier": ["B", "A", None, "C"],
            "tier": ["A", "C", "B", None],
            "change": ["upgraded", "downgraded", "new", "gone"],
        }
    )
    drift = pd.DataFrame(
        {
            "feature": ["rfm_monetary", "ix_count_30d", "ix_webinar_90d", "rfm_frequency_90d"],
            "psi": [0.04, 0.27, 0.31, 0.01],
            "warning": [False, True, True, False],
        }
    )
    return report.build_context(
        frame,
        scheme,
        names,
        profile,
        metrics,
        {"name": "leadtier-demo", "version": "3", "train_as_of": "2026-06-30", "run_id": "r1"},
        revenue=pd.Series(rng.lognormal(6, 2, n) * (rng.uniform(size=n) < 0.4)),
        lang=lang,
        top_n=5,
        migration=migration,
        drift=drift,
        worklist=_worklist(cfg, frame, lang),
        worklist_csv="outputs/demo/worklist.csv",
        worklist_rows=200,
        currency="£",
    )


def _worklist(cfg, frame: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The worklist `leadtier worklist` plans from ``frame``: three owners, deal values, long reasons."""
    from leadtier.pipelines import worklist

    rng = np.random.default_rng(11)
    attrs = pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "owner": rng.choice(["Ann Example", "Bob Example", "李明"], len(frame)),
            "value": rng.lognormal(8, 1, len(frame)).round(2),
        }
    )
    contacts = pd.DataFrame({"customer_id": frame["customer_id"][:20], "last_contact": pd.Timestamp("2026-06-27")})
    out = worklist.build(cfg, frame, attrs, contacts, dt.date(2026, 6, 30), lang)
    why = {
        "en": "bought 20 days ago (↑); 3 quote requests in the last 30 days (↑); no webinar in the last 90 days (↓)",
        "zh": "20 天前购买 (↑)；近 30 天报价请求 3 次 (↑)；近 90 天没有网络研讨会 (↓)",
    }
    out["reasons"] = why[lang]
    return out


def _chromium(args: list[str], user_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={user_dir}", *args],
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
    )


# Measures the layout of the page as shown: its width, what sticks out, what comes first.
MEASURE = """(function () {
  var width = window.innerWidth, root = document.documentElement, past = [];
  document.querySelectorAll("main table").forEach(function (t) {
    var box = t.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 0.5) {
      past.push((t.closest("section") || {}).id + " " + (t.id || t.className));
    }
  });
  var first = document.querySelector("main > section");
  return {width: width, scrollWidth: root.scrollWidth, firstSection: first && first.id,
          firstHeading: document.querySelector("main h2").textContent, tablesPastEdge: past};
})()"""


class DevTools:
    """Headless chromium driven over ``--remote-debugging-pipe`` (the DevTools protocol on file
    descriptors 3 and 4): a viewport of any width (the window cannot be narrower than 500 px), print
    media, screenshots and print to PDF, with nothing but the standard library."""

    def __init__(self, user_dir: Path):
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def wire():  # in the child: its fd 3 reads our commands, its fd 4 writes the answers
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        flags = [f for f in FLAGS if not f.startswith("--virtual-time-budget")]
        self.proc = subprocess.Popen(
            [CHROMIUM, *flags, "--remote-debugging-pipe", f"--user-data-dir={user_dir}", "about:blank"],
            preexec_fn=wire,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer, self._next, self.events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._read], [], [], max(left, 0))
            assert ready, "chromium did not answer within 30 s"
            chunk = os.read(self._read, 1 << 20)
            assert chunk, "chromium closed the DevTools pipe"
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next:
                assert "error" not in answer, f"{method}: {answer['error']}"
                return answer["result"]
            self.events.append(answer.get("method"))

    def open(self, url: str, width: int, media: str = "screen") -> None:
        """Show ``url`` in a viewport ``width`` CSS px wide, with ``media`` CSS (screen or print)."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Emulation.setEmulatedMedia", session=True, media=media)
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + 30
        while "Page.loadEventFired" not in self.events:
            self.events.append(self._message(deadline).get("method"))

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)["result"]["value"]

    def screenshot(self, path: Path, height: int) -> None:
        clip = {"x": 0, "y": 0, "width": self.evaluate("window.innerWidth"), "height": height, "scale": 1}
        shot = self.call("Page.captureScreenshot", session=True, format="png", clip=clip, captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def pdf(self, path: Path) -> bytes:
        """Print as the browser's print dialog does by default: the page's own @page size and margins."""
        self.call("Emulation.setEmulatedMedia", session=True, media="")
        printed = self.call("Page.printToPDF", session=True, printBackground=True, preferCSSPageSize=True)
        path.write_bytes(base64.b64decode(printed["data"]))
        return path.read_bytes()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        os.close(self._write)
        os.close(self._read)


# Sorts, searches and downloads the worklist table, catching the CSV instead of saving it.
INTERACT = """<script>
(function () {
  var root = document.documentElement, table = document.getElementById("worklist-table");
  function ids() { return Array.prototype.filter.call(table.tBodies[0].rows, function (r) { return !r.hidden; })
    .map(function (r) { return r.cells[0].textContent.trim(); }); }
  function scores() {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return parseFloat(r.cells[2].getAttribute("data-v"));
    });
  }
  var th = table.querySelector('th[data-key="score"]');
  th.click();
  var desc = scores();
  th.click();
  var asc = scores();
  var search = document.getElementById("worklist-search");
  search.value = ids()[3];
  search.dispatchEvent(new Event("input"));
  var found = ids();
  URL.createObjectURL = function (blob) {
    blob.text().then(function (text) { root.setAttribute("data-csv", text); });
    return "blob:caught";
  };
  HTMLAnchorElement.prototype.click = function () { root.setAttribute("data-download", this.download); };
  document.getElementById("worklist-download").click();
  root.setAttribute("data-interact", JSON.stringify({desc: desc, asc: asc, found: found,
    count: document.getElementById("worklist-count").textContent}));
})();
</script>"""


def _with_script(html_path: Path, script: str, name: str) -> Path:
    out = html_path.with_name(name)
    out.write_text(html_path.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    return out


def _attribute(dom: str, name: str) -> str:
    match = re.search(rf'<html[^>]*\s{name}="([^"]*)"', dom)
    assert match, f"the page set no {name} attribute"
    return htmllib.unescape(match.group(1))


def _keep(path: Path) -> None:
    """Copy a screenshot or PDF to test-artifacts/ for a person (or CI) to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / path.name)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def pdf_pages(data: bytes) -> list[dict]:
    """Each page of a PDF that Chromium printed, in order: its ``size`` (points) and ``text`` (from the
    fonts' ToUnicode maps). Enough PDF for Skia's output: plain objects, Flate streams, Identity-H fonts."""
    heads = list(re.finditer(rb"(?:^|\n)(\d+) 0 obj\s*", data))
    ends = [h.start() for h in heads[1:]] + [len(data)]
    objs = {int(h.group(1)): data[h.end() : end] for h, end in zip(heads, ends, strict=True)}

    def stream(n: int) -> bytes:
        body = objs[n]
        m = re.search(rb"stream\r?\n", body)
        length = int(re.search(rb"/Length\s+(\d+)(?!\s+\d+\s+R)", body[: m.start()]).group(1))
        raw = body[m.end() : m.end() + length]
        return zlib.decompress(raw) if b"/FlateDecode" in body[: m.start()] else raw

    def unicode_map(n: int) -> dict[int, str]:
        text, out = stream(n), {}
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
            for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                out[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
        for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
            for lo, hi, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                for i in range(int(hi, 16) - int(lo, 16) + 1):
                    out[int(lo, 16) + i] = chr(int(dst, 16) + i)
        return out

    def kids(n: int) -> list[int]:
        body = objs[n]
        if re.search(rb"/Type\s*/Page\b", body):
            return [n]
        refs = re.search(rb"/Kids\s*\[(.*?)\]", body, re.S).group(1)
        return [p for k in re.findall(rb"(\d+) 0 R", refs) for p in kids(int(k))]

    def page(n: int) -> dict:
        body = objs[n]
        fonts = dict(re.findall(rb"/(F\d+)\s+(\d+) 0 R", re.search(rb"/Font\s*<<(.*?)>>", body, re.S).group(1)))
        maps = {
            name: unicode_map(int(re.search(rb"/ToUnicode\s+(\d+) 0 R", objs[int(ref)]).group(1)))
            for name, ref in fonts.items()
        }
        contents = re.search(rb"/Contents\s+(\d+) 0 R", body).group(1)
        text, current = [], {}
        for m in re.finditer(rb"/(F\d+)\s+[\d.]+\s+Tf|<([0-9A-Fa-f]*)>\s*Tj|\[([^\]]*)\]\s*TJ", stream(int(contents))):
            if m.group(1):
                current = maps.get(m.group(1), {})
                continue
            for hexed in [m.group(2)] if m.group(2) is not None else re.findall(rb"<([0-9A-Fa-f]*)>", m.group(3)):
                text += [current.get(int(hexed[i : i + 4], 16), "") for i in range(0, len(hexed), 4)]
        box = [float(v) for v in re.search(rb"/MediaBox\s*\[([^\]]*)\]", body).group(1).split()]
        return {"size": (box[2] - box[0], box[3] - box[1]), "text": "".join(text)}

    catalog = next(n for n, body in objs.items() if re.search(rb"/Type\s*/Catalog", body))
    root = int(re.search(rb"/Pages\s+(\d+) 0 R", objs[catalog]).group(1))
    return [page(n) for n in kids(root)]


@pytest.fixture(scope="module", params=["en", "zh"])
def rendered(request, tmp_path_factory):
    lang = request.param
    tmp = tmp_path_factory.mktemp(f"report_{lang}")
    html_path = tmp / f"report_{lang}.html"
    html_path.write_text(report.render(_synthetic_context(lang), lang), encoding="utf-8")
    dom = _chromium(["--dump-dom", html_path.as_uri()], tmp / "profile-dom")
    return lang, html_path, dom, tmp


@pytest.fixture(scope="module")
def devtools(tmp_path_factory):
    browser = DevTools(tmp_path_factory.mktemp("devtools") / "profile")
    yield browser
    browser.close()


def test_dom_has_every_section_and_no_script_errors(rendered):
    lang, html_path, dom, _ = rendered
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert f'<html lang="{lang}"' in html
    assert re.findall(r'<section id="([^"]+)"', html) == list(SECTIONS)  # call first, then the rest in order
    body = re.search(r"<body([^>]*)>", html).group(1)
    assert 'data-rendered="1"' in body, "the inline script did not run"
    assert f'data-sections="{len(SECTIONS)}"' in body
    root = re.search(r"<html([^>]*)>", html).group(1)
    assert "data-js-errors" not in root, f"the page caught a script error: <html{root}>"
    page_lines = [
        line for line in dom.stderr.splitlines() if ("CONSOLE" in line and html_path.name in line) or "Uncaught" in line
    ]
    assert not page_lines, "console output from the page:\n" + "\n".join(page_lines)
    assert "planted@example.com" not in html
    assert html.count("<svg") >= 3  # tier bars, revenue concentration, one tier-mix bar per segment
    assert re.search(r'id="worklist-count"[^>]*>[^<]*200[^<]*</span>', html), "the search count was not filled in"


def test_worklist_table_sorts_searches_and_downloads_csv(rendered):
    lang, html_path, _, tmp = rendered
    page = _with_script(html_path, INTERACT, "interact.html")
    dom = _chromium(["--dump-dom", page.as_uri()], tmp / "profile-interact")
    assert dom.returncode == 0, dom.stderr[-2000:]
    seen = json.loads(_attribute(dom.stdout, "data-interact"))
    assert seen["desc"] == sorted(seen["desc"], reverse=True) and seen["asc"] == sorted(seen["asc"])
    assert len(seen["found"]) == 1 and "1" in seen["count"]
    assert _attribute(dom.stdout, "data-download") == "worklist.csv"
    lines = _attribute(dom.stdout, "data-csv").lstrip("\ufeff").strip().splitlines()
    assert lines[0] == "customer_id,tier,score,p_close,expected_value,due_date,week,status,owner,reasons"
    assert len(lines) == 2 and lines[1].startswith(seen["found"][0] + ",")  # the rows shown: the one found


def test_desktop_screenshot(rendered, devtools):
    lang, html_path, _, tmp = rendered
    devtools.open(html_path.as_uri(), DESKTOP)
    assert devtools.evaluate(MEASURE)["firstSection"] == "call-first"
    png = tmp / f"report_{lang}_{DESKTOP}.png"
    devtools.screenshot(png, 2400)
    assert _png_size(png) == (DESKTOP, 2400) and png.stat().st_size > 10_000
    _keep(png)


def test_phone_width_has_no_horizontal_overflow_and_opens_with_call_first(rendered, devtools):
    lang, html_path, _, tmp = rendered
    devtools.open(html_path.as_uri(), PHONE)
    found = devtools.evaluate(MEASURE)
    assert found["width"] == PHONE
    assert found["scrollWidth"] <= found["width"], f"the page is wider than a {PHONE} px phone: {found}"
    assert found["firstSection"] == "call-first"
    assert found["firstHeading"] == report.strings(lang)["h_call_first"]
    png = tmp / f"report_{lang}_{PHONE}.png"
    devtools.screenshot(png, 2400)
    assert _png_size(png) == (PHONE, 2400) and png.stat().st_size > 10_000
    _keep(png)


def test_print_fits_a4_and_its_first_page_holds_call_first(rendered, devtools):
    lang, html_path, _, tmp = rendered
    devtools.open(html_path.as_uri(), A4_CONTENT_PX, media="print")
    found = devtools.evaluate(MEASURE)
    assert found["scrollWidth"] <= found["width"] and not found["tablesPastEdge"], f"clipped in print: {found}"
    pdf = tmp / f"report_{lang}.pdf"
    pages = pdf_pages(devtools.pdf(pdf))
    _keep(pdf)
    assert all(abs(w - 595.3) < 1 and abs(h - 841.9) < 1 for w, h in (p["size"] for p in pages)), "not A4"
    first = re.sub(r"\s+", "", pages[0]["text"])
    s = report.strings(lang)
    assert re.sub(r"\s+", "", s["h_call_first"]) in first, f"page 1 lacks the call-first section: {first[:400]}"
    call_list = re.search(r'<table class="calls">.*?<td class="id"[^>]*>([^<]+)</td>', html_path.read_text(), re.S)
    assert call_list.group(1) in first, "page 1 holds the heading but not the first customer to call"
    assert re.sub(r"\s+", "", s["h_drift"]) not in first
    assert len(pages) <= 12, f"the printout runs to {len(pages)} pages"
