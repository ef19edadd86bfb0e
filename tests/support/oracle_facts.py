#!/usr/bin/env python3
"""Reduce the oracle's recording (oracle.json from ../shared/oracle/run_oracle.py
--ownership) to the facts heapvis is compared on, one JSON object per snapshot per
line, so the Rust parity tests never hold the whole (hundreds of MB) recording.

Each line: snapshot, heap_structure, blocks [[address, bytes]], free_runs,
total_free, longest_free, colours {address: colour the reference drew},
layout_edges [[tail, head]] (block -> word edges), root_edges [[source, head]],
strings {address: label text}, chunks {address: label text}, bytecode {address:
code_info_size}, map_cells {table: [[port, text]]}, map_ports [[table, head, port]],
messages.

The colour of a node is what the reference's heap_layout drawing shows:
map tables gold, qstr chunks lightsalmon, bytecode lightseagreen, strings hotpink
(filled), otherwise the first table's bgcolor, with plum when the reference set
fillcolor=plum on a gray block (its "dynamic type" rule).
"""
import html
import json
import re
import sys

BG = re.compile(r'bgcolor="([a-z]+)"')
CELL = re.compile(r'<td port="([^"]*)">(.*?)</td>')
PALE_FULL = re.compile(r'<td colspan="16" bgcolor="palegreen"')
PALE_PART = re.compile(r'<td colspan="(\d+)" bgcolor="palegreen" height="18" width="[0-9.]+"></td><td colspan=')
CHUNK = re.compile(r'<tr><td height="-?\d+" >((?:(?!</td>).)*)</td></tr></table>>$', re.S)


def colour(attrs):
    label = attrs.get("label", "")
    if label.startswith('<<table bgcolor="gold"'):
        return "gold"
    if 'bgcolor="lightsalmon"' in label:
        return "lightsalmon"
    if '<td colspan="16" bgcolor="lightseagreen"' in label:
        return "lightseagreen"
    if attrs.get("style") == "filled" and attrs.get("fillcolor") == "hotpink":
        return "hotpink"
    m = BG.search(label)
    c = m.group(1) if m else "gray"
    if c == "gray" and attrs.get("fillcolor") == "plum":
        return "plum"
    return c


def facts(snap):
    layout = next((d["graph"] for d in snap["draws"] if d["kind"] == "heap_layout"), None)
    owner = next((d["graph"] for d in snap["draws"] if d["kind"] == "heap_ownership"), None)
    out = {k: snap[k] for k in ("snapshot", "heap_structure", "free_runs", "total_free", "longest_free", "messages")}
    out["blocks"] = [[b["address"], b["bytes"]] for b in snap["blocks"]]
    block_set = {b["address"] for b in snap["blocks"]}
    colours, strings, chunks, bytecode = {}, {}, {}, {}
    for n in (layout or {}).get("nodes", []):
        if not n["name"].isdigit() or int(n["name"]) not in block_set:
            continue
        a = int(n["name"])
        attrs = n["attrs"]
        c = colour(attrs)
        colours[a] = c
        if c == "hotpink":
            strings[a] = attrs.get("label", "")
        elif c == "lightseagreen":
            label = attrs.get("label", "")
            full = len(PALE_FULL.findall(label))
            part = PALE_PART.search(label)
            bytecode[a] = 16 * full + (int(part.group(1)) if part else 0)
        elif c == "lightsalmon":
            m = CHUNK.search(attrs.get("label", ""))
            chunks[a] = html.unescape(m.group(1).replace("<br/>", "")) if m else None
    out["colours"] = colours
    out["strings"] = strings
    out["chunks"] = chunks
    out["bytecode"] = bytecode
    out["layout_edges"] = sorted({(int(e["tail"]), int(e["head"])) for e in (layout or {}).get("edges", [])})
    roots, cells, ports = [], {}, []
    for e in (owner or {}).get("edges", []):
        if not e["tail"].isdigit():
            roots.append([e["tail"], int(e["head"])])
        else:
            port = e["attrs"].get("tailport", "")
            if port and ":" not in port:
                ports.append([int(e["tail"]), int(e["head"]), port])
    for n in (owner or {}).get("nodes", []):
        label = n["attrs"].get("label", "")
        if n["name"].isdigit() and label.startswith('<<table bgcolor="gold"'):
            cells[int(n["name"])] = [[p, html.unescape(t)] for p, t in CELL.findall(label) if p]
    out["root_edges"] = sorted(roots)
    out["map_cells"] = cells
    out["map_ports"] = sorted(ports)
    return out


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    w = sys.stdout
    for snap in data["snapshots"]:
        w.write(json.dumps(facts(snap), separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
