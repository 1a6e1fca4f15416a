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

These hooks generate real images and CSV files for those media types (a positive batch's column
parameters then name the file's columns), give a positive
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


# CSV files with every column the batch endpoint reads, under their default header names, in
# ASCII (the same bytes in UTF-8 and CP949, whichever encoding the query names).
_ascii = st.text(st.characters(min_codepoint=0x41, max_codepoint=0x5A), min_size=1, max_size=12)
_COLUMNS = ["name", "text", "title", "tagline", "preset", "seed", "show_name"]


@st.composite
def _csv(draw):
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        rows.append(
            [draw(_ascii), draw(_ascii), draw(_ascii), draw(_ascii), "",
             str(draw(st.integers(0, 2**32 - 1))), draw(st.sampled_from(["true", "false", ""]))]
        )
    return _write(_COLUMNS, rows, "ascii")


schemathesis.openapi.media_type("text/csv", _csv())


def _png_data_url():
    import base64

    buf = io.BytesIO()
    Image.new("RGBA", (24, 12), (31, 78, 121, 255)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


_LOGO = _png_data_url()


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
    """Point the query's column parameters at the file's default header names.

    The query, not the body, is changed: schemathesis re-checks a container a hook rewrites
    against the schema, and bytes never pass a JSON Schema check, so a rewritten file would turn
    the case negative."""
    q = case.query
    if not isinstance(q, dict):
        return
    fitted = dict(q)
    for c in _COLUMNS:
        if fitted.get(f"{c}_column") is not None:
            fitted[f"{c}_column"] = c
    if fitted != q:
        case.query = fitted
