"""schemathesis hooks for bench/api-fuzz.sh: the few request rules JSON Schema cannot state.

Positive cases are meant to be requests the server must accept. Three rules of atelier's API
are beyond what `/openapi.json` can say, so without help schemathesis draws positive cases that
break them and reports the server's correct 422 as a failure:

- file contents: a product photo must decode as an image, and a customer CSV must have a header
  naming the columns its query parameters point at (name and text by default);
- a campaign's logo, a data: URL, must hold an image, and a visible label's text must be
  drawable in the bundled label font (a positive case's label text becomes Korean and Latin
  text the font has);
- two rules across fields: a campaign's `active_until` must be after its `active_from`, and a
  storyboard's `target_seconds` must give each of its cuts 0.5 to 15 seconds
  (`CUT_SECONDS` in crates/workflows/src/storyboards/spec.rs).

These hooks generate real images and CSV files for those media types, give a positive
campaign a real PNG logo where it has one, put its two dates in order, and bring a positive
storyboard's total into its cuts' range. Negative cases (requests that must be refused) are left exactly
as schemathesis drew them, and every other rule is still checked against the schema alone.
`bench/api-fuzz.sh` loads this file through SCHEMATHESIS_HOOKS; HOOKS=none runs without it.
"""

import csv
import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image


@st.composite
def _image(draw, fmt):
    w = draw(st.integers(1, 96))
    h = draw(st.integers(1, 96))
    mode = draw(st.sampled_from(["RGB", "RGBA", "L"]))
    colour = draw(st.tuples(*[st.integers(0, 255)] * 4))
    img = Image.new(mode, (w, h), colour[: len(mode)] if mode != "L" else colour[0])
    if fmt == "JPEG" and mode == "RGBA":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


schemathesis.openapi.media_type("image/png", _image("PNG"))
schemathesis.openapi.media_type("image/jpeg", _image("JPEG"))
schemathesis.openapi.media_type("image/webp", _image("WEBP"))

_names = st.text(st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=20).filter(
    lambda s: s.strip()
)


@st.composite
def _csv(draw):
    rows = draw(st.lists(st.tuples(_names, _names), min_size=1, max_size=3))
    return _write(["name", "text"], [list(r) for r in rows], "utf-8")


schemathesis.openapi.media_type("text/csv", _csv())

def _png_data_url():
    import base64

    buf = io.BytesIO()
    Image.new("RGBA", (24, 12), (31, 78, 121, 255)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


_LOGO = _png_data_url()

# The batch endpoint's column parameters, in CSV header order.
_COLUMNS = ["name", "text", "title", "tagline", "preset", "seed", "show_name"]


def _write(header, rows, encoding):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


@schemathesis.hook
def map_case(context, case):
    if not _positive(case):
        return case
    path, method = case.operation.path, case.method.upper()
    if path == "/v1/campaigns/{id}/batches" and method == "POST":
        _fit_csv(case)
    elif path in ("/v1/images/generations", "/v1/predictions", "/v1/models/{owner}/{name}/predictions"):
        _drawable_label(case.body)
    elif path == "/v1/storyboards" and method == "POST" and isinstance(case.body, dict):
        _fit_total(case.body)
    elif path in ("/v1/campaigns", "/v1/campaigns/{id}") and isinstance(case.body, dict):
        if isinstance(case.body.get("logo"), str):
            case.body["logo"] = _LOGO
        a, b = case.body.get("active_from"), case.body.get("active_until")
        if isinstance(a, str) and isinstance(b, str) and _instant(a) >= _instant(b):
            # Same two instants, in the order the rule asks for; equal ones get a second apart.
            if _instant(a) == _instant(b):
                case.body["active_until"] = None
            else:
                case.body["active_from"], case.body["active_until"] = b, a
    return case


def _drawable_label(body):
    if not isinstance(body, dict):
        return
    holder = body.get("input") if isinstance(body.get("input"), dict) else body
    label = holder.get("label")
    if isinstance(label, dict) and isinstance(label.get("text"), str) and label["text"]:
        label["text"] = "AI 생성 · AI generated"[: max(1, len(label["text"]))]


CUT_SECONDS = (0.5, 15.0)


def _fit_total(body):
    t, script = body.get("target_seconds"), body.get("script")
    cuts = script.get("cuts") if isinstance(script, dict) else None
    if isinstance(t, (int, float)) and isinstance(cuts, list) and cuts:
        n = len(cuts)
        body["target_seconds"] = min(max(t, n * CUT_SECONDS[0]), n * CUT_SECONDS[1])


def _instant(s):
    from datetime import datetime

    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _fit_csv(case):
    """A CSV whose header has every column the query names, in the encoding it asks for."""
    q = case.query or {}
    header = [q.get(f"{c}_column") or c for c in _COLUMNS[:2]]
    for c in _COLUMNS[2:]:
        if q.get(f"{c}_column") is not None:
            header.append(q[f"{c}_column"])
    rows = [["고객 %d" % i, "이야기 %d" % i] + [""] * (len(header) - 2) for i in (1, 2)]
    enc = (q.get("encoding") or "utf-8").strip().lower()
    codec = "cp949" if enc in ("cp949", "euc-kr", "euckr", "ms949", "windows-949", "uhc") else "utf-8"
    try:
        case.body = _write(header, rows, codec)
    except UnicodeEncodeError:
        # A column name CP949 cannot spell: the file can only be UTF-8.
        q["encoding"] = "utf-8"
        case.body = _write(header, rows, "utf-8")
