#!/usr/bin/env python3
"""sustain's TouchOSC layout, described once and written in both of TouchOSC's formats:

  examples/touchosc/sustain.tosc       TouchOSC (2021 and later): zlib-compressed XML
                                       (<lexml>, nodes with properties and OSC messages)
  examples/touchosc/sustain.touchosc   TouchOSC Mk1: a ZIP holding index.xml (<layout>,
                                       <tabpage>s of <control>s; names and texts in base64)
  docs/images/touchosc-sustain.svg     a picture of both pages, for docs/touchosc.md

  tools/touchosc_layouts.py            writes both files
  tools/touchosc_layouts.py --check    fails if a committed file differs from what this
                                       description gives, or if the layout and the mapping
                                       (examples/touchosc.toml) disagree: a control sending an
                                       address the mapping neither maps nor ignores, a label
                                       the mapping does not feed, a mapped address no
                                       control sends.

Both formats carry the same controls at the same OSC addresses. Mk1 builds a control's
address from its page's and its own name (/1/fader1), so the names here are those
addresses' parts; the .tosc file spells each address out as a constant path. Files are
written deterministically (fixed IDs, fixed ZIP timestamps), and compared by their XML, so
that another zlib's bytes do not count as a change.
"""
import argparse
import base64
import io
import os
import sys
import tomllib
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TOSC = os.path.join(ROOT, "examples", "touchosc", "sustain.tosc")
MK1 = os.path.join(ROOT, "examples", "touchosc", "sustain.touchosc")
MAPPING = os.path.join(ROOT, "examples", "touchosc.toml")
PICTURE = os.path.join(ROOT, "docs", "images", "touchosc-sustain.svg")

# Mk1's iPad portrait canvas (mode 1); the .tosc canvas puts both pages side by side.
PAGE_W, PAGE_H = 768, 1024
COLORS = {  # Mk1's colour names, and the RGBA TouchOSC draws them in
    "red": (1.0, 0.0, 0.0), "yellow": (1.0, 0.85, 0.0), "green": (0.0, 0.8, 0.2),
    "blue": (0.1, 0.5, 1.0), "purple": (0.6, 0.2, 0.9), "gray": (0.6, 0.6, 0.6), "orange": (1.0, 0.5, 0.0),
}


@dataclass
class Control:
    kind: str          # fader, multifader, xy, toggle, push, label
    name: str          # the last part of its address
    x: int
    y: int
    w: int
    h: int
    color: str
    count: int = 0     # multifader: how many faders
    text: str = ""     # label: what it shows before the engine sends anything; push: a caption


@dataclass
class Page:
    name: str
    controls: list = field(default_factory=list)


def layout():
    """The layout, page by page (docs/touchosc.md shows it)."""
    mixer = Page("1", [
        Control("label", "master_db", 20, 20, 100, 50, "red", text="master"),
        Control("label", "freq0", 130, 20, 350, 50, "yellow", text="voice 0"),
        Control("fader", "fader1", 20, 80, 100, 620, "red"),
    ])
    for v in range(4):
        mixer.controls.append(Control("fader", f"fader{v + 2}", 130 + 90 * v, 80, 80, 620, "yellow"))
    mixer.controls += [
        Control("xy", "xy1", 500, 80, 248, 400, "green"),
        Control("toggle", "toggle1", 500, 500, 120, 120, "blue"),
        Control("label", "spare", 20, 730, 460, 60, "gray", text="spare"),
        Control("label", "failovers", 500, 730, 248, 60, "gray", text="failovers"),
    ]
    tuning = Page("2", [
        Control("multifader", "multifader1", 20, 80, 460, 710, "purple", count=4),
        Control("push", "push1", 520, 80, 228, 110, "blue", text="A 220"),
        Control("push", "push2", 520, 210, 228, 110, "blue", text="A 440"),
        Control("push", "push3", 520, 340, 228, 110, "blue", text="A 880"),
        Control("push", "panic", 520, 640, 228, 150, "red", text="PANIC"),
    ])
    return [mixer, tuning]


def sent_addresses(pages):
    """What the controls send, as TouchOSC builds it: /page/name, a multi-fader's /page/name/N."""
    out = set()
    for page in pages:
        for c in page.controls:
            base = f"/{page.name}/{c.name}"
            if c.kind == "multifader":
                out |= {f"{base}/{n}" for n in range(1, c.count + 1)}
            elif c.kind != "label":
                out.add(base)
    return out


def label_addresses(pages):
    return {f"/{p.name}/{c.name}" for p in pages for c in p.controls if c.kind == "label"}


# ---- TouchOSC Mk1: index.xml in a ZIP ----

def b64(text):
    return base64.b64encode(text.encode()).decode()


def mk1_control(c):
    common = f'name="{b64(c.name)}" x="{c.x}" y="{c.y}" w="{c.w}" h="{c.h}" color="{c.color}"'
    if c.kind == "fader":
        return (f'<control {common} scalef="0.0" scalet="1.0" type="faderv" response="absolute" '
                'inverted="false" centered="false" ></control>')
    if c.kind == "multifader":
        return (f'<control {common} scalef="0.0" scalet="1.0" type="multifaderv" number="{c.count}" '
                'inverted="false" centered="false" ></control>')
    if c.kind == "xy":
        return (f'<control {common} scalef="0.0" scalet="1.0" type="xy" inverted_x="false" inverted_y="false" '
                'rev_xy="false" ></control>')
    if c.kind == "toggle":
        return f'<control {common} scalef="0.0" scalet="1.0" type="toggle" local_off="false" ></control>'
    if c.kind == "push":
        # Sends 1 on press and 0 on release; the mapping acts on the press only.
        return (f'<control {common} scalef="0.0" scalet="1.0" type="push" local_off="false" sp="true" '
                'sr="true" ></control>')
    return (f'<control {common} type="labelh" text="{b64(c.text)}" size="18" background="true" '
            'outline="false" ></control>')


def mk1_xml(pages):
    # Mk1's XML names the orientation the other way round from its editor: "horizontal" with
    # x across the 768-wide side is the iPad held upright (portrait), as drawn here.
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<layout version="17" mode="1" orientation="horizontal">']
    for page in pages:
        out.append(f'<tabpage name="{b64(page.name)}" scalef="0.0" scalet="1.0" li_t="{b64(page.name)}" li_c="gray" '
                   'li_s="14" li_o="false" li_b="false" la_t="" la_c="gray" la_s="14" la_o="false" la_b="false" >')
        out += [mk1_control(c) for c in page.controls]
        out.append("</tabpage>")
    out.append("</layout>")
    return "\n".join(out) + "\n"


def mk1_bytes(xml):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("index.xml", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, xml)
    return buffer.getvalue()


def mk1_read(path):
    with zipfile.ZipFile(path) as archive:
        return archive.read("index.xml").decode()


# ---- TouchOSC: zlib-compressed lexml ----

def node_id(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "sustain-touchosc/" + "/".join(parts)))


def prop(kind, key, value):
    return f"<property type='{kind}'><key><![CDATA[{key}]]></key><value>{value}</value></property>"


def frame(x, y, w, h):
    return prop("r", "frame", f"<x>{x}</x><y>{y}</y><w>{w}</w><h>{h}</h>")


def color(name):
    r, g, b = COLORS[name]
    return prop("c", "color", f"<r>{r}</r><g>{g}</g><b>{b}</b><a>1</a>")


def partial_constant(text, conversion="STRING"):
    return (f"<partial><type>CONSTANT</type><conversion>{conversion}</conversion><value><![CDATA[{escape(text)}]]>"
            "</value><scaleMin>0</scaleMin><scaleMax>1</scaleMax></partial>")


def partial_var(var, conversion="FLOAT"):
    return (f"<partial><type>VALUE</type><conversion>{conversion}</conversion><value><![CDATA[{var}]]></value>"
            "<scaleMin>0</scaleMin><scaleMax>1</scaleMax></partial>")


def osc_message(address, variables, send=True, conversion="FLOAT"):
    """One OSC message: sent when any of `variables` changes, received to set them."""
    triggers = "".join(f"<trigger><var><![CDATA[{v}]]></var><condition>ANY</condition></trigger>" for v in variables)
    arguments = "".join(partial_var(v, conversion) for v in variables)
    return (f"<osc><enabled>1</enabled><send>{1 if send else 0}</send><receive>1</receive><feedback>0</feedback>"
            f"<connections>11111</connections><triggers>{triggers}</triggers>"
            f"<path>{partial_constant(address)}</path><arguments>{arguments}</arguments></osc>")


def text_value(text, locked):
    """A label's text is a value of the node, not a property: its default, and whether it
    stays (`locked`: a caption) or takes what OSC sends."""
    return (f"<value><key><![CDATA[text]]></key><locked>0</locked><lockedDefaultCurrent>{1 if locked else 0}"
            f"</lockedDefaultCurrent><default><![CDATA[{escape(text)}]]></default><defaultPull>0</defaultPull></value>")


# What every node carries, as TouchOSC's editor writes it (a reader may not fill in what is
# left out); a control overrides some.
COMMON_PROPERTIES = {
    "background": ("b", 1), "cornerRadius": ("f", 1), "grabFocus": ("b", 1), "interactive": ("b", 1),
    "locked": ("b", 0), "orientation": ("i", 0), "outline": ("b", 1), "outlineStyle": ("i", 0),
    "pointerPriority": ("i", 0), "shape": ("i", 1), "visible": ("b", 1),
}


def tosc_node(kind, ident, name, x, y, w, h, colour, extra=None, messages="", children="", values=""):
    """A node; its properties in the editor's order (alphabetical by key)."""
    simple = dict(COMMON_PROPERTIES, **(extra or {}))
    props = {key: prop(kind_, key, value) for key, (kind_, value) in simple.items()}
    props["name"] = prop("s", "name", f"<![CDATA[{name}]]>")
    props["frame"] = frame(x, y, w, h)
    props["color"] = color(colour)
    body = "".join(props[key] for key in sorted(props))
    out = f"<node ID='{ident}' type='{kind}'><properties>{body}</properties><values>{values}</values>"
    if messages:
        out += f"<messages>{messages}</messages>"
    if children:
        out += f"<children>{children}</children>"
    return out + "</node>"


def tosc_control(page, c, offset_x):
    address = f"/{page.name}/{c.name}"
    ident = node_id(page.name, c.name)
    x = c.x + offset_x
    if c.kind == "fader":
        return tosc_node("FADER", ident, c.name, x, c.y, c.w, c.h, c.color, {"orientation": ("i", 0)},
                         osc_message(address, ["x"]))
    if c.kind == "multifader":
        # A group of faders, one message each: /2/multifader1/1 .. /N, as Mk1's multi-fader sends.
        width = c.w // c.count
        faders = "".join(
            tosc_node("FADER", node_id(page.name, c.name, str(n)), str(n), width * (n - 1), 0, width - 4, c.h, c.color,
                      {"orientation": ("i", 0)}, osc_message(f"{address}/{n}", ["x"]))
            for n in range(1, c.count + 1))
        return tosc_node("GROUP", ident, c.name, x, c.y, c.w, c.h, c.color, children=faders)
    if c.kind == "xy":
        return tosc_node("XY", ident, c.name, x, c.y, c.w, c.h, c.color, None, osc_message(address, ["x", "y"]))
    if c.kind in ("toggle", "push"):
        button_type = 1 if c.kind == "toggle" else 0  # 0: momentary (1 on press, 0 on release)
        button = tosc_node("BUTTON", ident, c.name, x, c.y, c.w, c.h, c.color, {"buttonType": ("i", button_type)},
                           osc_message(address, ["x"]))
        if not c.text:
            return button
        caption = tosc_node("LABEL", node_id(page.name, c.name, "caption"), c.name + "_caption", x, c.y, c.w, c.h,
                            "gray", {"interactive": ("b", 0)}, values=text_value(c.text, locked=True))
        return button + caption
    # A label: receives its text, sends nothing.
    return tosc_node("LABEL", ident, c.name, x, c.y, c.w, c.h, c.color,
                     {"textSize": ("i", 18), "interactive": ("b", 0)},
                     osc_message(address, ["text"], send=False, conversion="STRING"),
                     values=text_value(c.text, locked=False))


def tosc_xml(pages):
    children = ""
    for index, page in enumerate(pages):
        offset = index * PAGE_W
        title = tosc_node("LABEL", node_id(page.name, "title"), f"page{page.name}", offset, 0, PAGE_W, 16, "gray",
                          {"interactive": ("b", 0)}, values=text_value(f"page {page.name}", locked=True))
        children += title + "".join(tosc_control(page, c, offset) for c in page.controls)
    root = tosc_node("GROUP", node_id("root"), "sustain", 0, 0, PAGE_W * len(pages), PAGE_H, "gray",
                     children=children)
    return "<?xml version='1.0' encoding='UTF-8'?><lexml version='3'>" + root + "</lexml>"


def tosc_read(path):
    with open(path, "rb") as f:
        return zlib.decompress(f.read()).decode()


# ---- a picture, for the docs ----

def svg(pages):
    gap = 40
    width = len(pages) * PAGE_W + (len(pages) - 1) * gap
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width // 2}" height="{PAGE_H // 2 + 20}" '
           f'viewBox="0 -40 {width} {PAGE_H + 40}" font-family="sans-serif">']
    for index, page in enumerate(pages):
        left = index * (PAGE_W + gap)
        out.append(f'<rect x="{left}" y="0" width="{PAGE_W}" height="{PAGE_H}" fill="#111"/>')
        out.append(f'<text x="{left}" y="-10" font-size="28" fill="#444">page {page.name}</text>')
        for c in page.controls:
            r, g, b = (int(v * 255) for v in COLORS[c.color])
            colour = f"rgb({r},{g},{b})"
            x = left + c.x
            if c.kind == "multifader":
                width_each = c.w // c.count
                for n in range(c.count):
                    out.append(f'<rect x="{x + n * width_each}" y="{c.y}" width="{width_each - 6}" height="{c.h}" '
                               f'fill="none" stroke="{colour}" stroke-width="3"/>')
                    out.append(f'<rect x="{x + n * width_each}" y="{c.y + c.h // 2}" width="{width_each - 6}" '
                               f'height="{c.h // 2}" fill="{colour}" opacity="0.5"/>')
            else:
                fill = "none" if c.kind in ("xy", "toggle") else colour
                opacity = "0.35" if c.kind == "label" else "0.5"
                out.append(f'<rect x="{x}" y="{c.y}" width="{c.w}" height="{c.h}" fill="{fill}" opacity="{opacity}" '
                           f'stroke="{colour}" stroke-width="3"/>')
            caption = c.text if c.kind in ("label", "push") else ""
            address = f"/{page.name}/{c.name}" + ("/1..4" if c.kind == "multifader" else "")
            out.append(f'<text x="{x + 8}" y="{c.y + 30}" font-size="22" fill="white">{escape(caption)}</text>')
            out.append(f'<text x="{x + 8}" y="{c.y + c.h - 10}" font-size="18" fill="#ddd">{escape(address)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---- the mapping ----

def mapping_addresses(path):
    """(mapped addresses, label addresses) of a mapping file, multi-controls expanded."""
    with open(path, "rb") as f:
        mapping = tomllib.load(f)
    mapped = set()
    for entry in mapping.get("map", []):
        if "count" in entry:
            first = entry.get("first_index", 1)
            mapped |= {f"{entry['address']}/{first + n}" for n in range(entry["count"])}
        else:
            mapped.add(entry["address"])
    return mapped, {label["address"] for label in mapping.get("label", [])}


def check(pages):
    problems = []
    if mk1_read(MK1) != mk1_xml(pages):
        problems.append(f"{os.path.relpath(MK1, ROOT)} differs from the description: run tools/touchosc_layouts.py")
    if tosc_read(TOSC) != tosc_xml(pages):
        problems.append(f"{os.path.relpath(TOSC, ROOT)} differs from the description: run tools/touchosc_layouts.py")
    with open(PICTURE) as f:
        if f.read() != svg(pages):
            problems.append(f"{os.path.relpath(PICTURE, ROOT)} differs from the description: run tools/touchosc_layouts.py")
    mapped, labels = mapping_addresses(MAPPING)
    sent = sent_addresses(pages)
    for address in sorted(sent - mapped):
        problems.append(f"the layout sends {address}, which the mapping does not map")
    for address in sorted(mapped - sent):
        problems.append(f"the mapping maps {address}, which no control sends")
    for address in sorted(label_addresses(pages) ^ labels):
        problems.append(f"label {address} is in only one of the layout and the mapping")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    pages = layout()
    if args.check:
        problems = check(pages)
        for p in problems:
            print(f"touchosc_layouts: {p}", file=sys.stderr)
        if not problems:
            print(f"touchosc_layouts: both layouts match the description and the mapping "
                  f"({len(sent_addresses(pages))} addresses sent, {len(label_addresses(pages))} labels)")
        return 1 if problems else 0
    os.makedirs(os.path.dirname(TOSC), exist_ok=True)
    with open(TOSC, "wb") as f:
        f.write(zlib.compress(tosc_xml(pages).encode(), 9))
    with open(MK1, "wb") as f:
        f.write(mk1_bytes(mk1_xml(pages)))
    os.makedirs(os.path.dirname(PICTURE), exist_ok=True)
    with open(PICTURE, "w") as f:
        f.write(svg(pages))
    print(f"wrote {os.path.relpath(TOSC, ROOT)}, {os.path.relpath(MK1, ROOT)} and {os.path.relpath(PICTURE, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
