"""``skyedge adapt``'s report for people: adapt.md and the command's one line on the cloud map (from adapt.json's
dict, :func:`skyedge.edge.labelling.adapt.adapt_package`)."""

from __future__ import annotations


def map_summary(m: dict) -> str:
    """One line on the cloud map: refitted or not, and how each head reads the labelled frames."""
    said = "refitted" if m["refitted"] else f"not refitted ({m['why']})"
    if "before" not in m:
        return f"cloud map: {said}"
    before, after = ("-" if v is None else f"{v:.2f}" for v in (m["before"]["balanced"], m["after_cross_validated"]["balanced"]))
    line = f"cloud map: {said}; frames on their side of the limit (balanced): shipped {before}, refit {after}"
    error = m.get("painted_cover_error_points")
    if error:
        line += (
            f"; {m['frames']['painted']} painted: cover off the painted by {error['before']} points as shipped, "
            f"{error['after_cross_validated']} refitted (medians)"
        )
    return line


def markdown(r: dict) -> str:
    """adapt.md: per-class accuracy before and after, the threshold, agreement with FP32 and the cloud map."""
    lines = [
        f"# skyedge adapt: {r['frames']} labelled frames from {r['data']}",
        "",
        f"Parent package: {r['parent']}. Added classes: {', '.join(r['added_classes']) or 'none'}.",
        "",
        "| class | frames | before | after (leave-one-out) |",
        "|---|---|---|---|",
    ]
    for c, n in r["counts"].items():
        if n:
            b, a = r["before"]["per_class"].get(c), r["after_leave_one_out"]["per_class"].get(c)
            lines.append(f"| {c} | {n} | {b:.2f} | {a:.2f} |")
    lines += [
        f"| **all** | {r['frames']} | **{r['before']['accuracy']:.3f}** | **{r['after_leave_one_out']['accuracy']:.3f}** |",
        "",
        f"Open-set threshold: {r['unknown_threshold']['parent']} -> {r['unknown_threshold']['adapted']:.3f}.",
        "Top-1 agreement with FP32 on these frames: "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["agreement_with_fp32"].items())
        + ".",
        "",
    ]
    return "\n".join(lines + _map_markdown(r["cloud_map"]))


def _map_markdown(m: dict) -> list[str]:
    head = "Cloud map: not refitted ({}).".format(m.get("why")) if not m["refitted"] else "Cloud map refitted."
    if "before" not in m:
        return [head, ""]
    c, n = m["check"], m["frames"]
    painted = f" ({n['painted']} painted)" if n.get("painted") else ""
    lines = [
        f"{head} On {n['clear_side']} clear or moonlit and {n['cloudy']} cloudy frames{painted}: the cloud each "
        f"frame's map reads within {c['cloud_map_zenith_deg']:g} deg of the zenith (median), and the share of frames "
        f"on their side of the check's {c['cloud_map_max_cover']:g}% limit (the refit's scale: {m['scale']}):",
        "",
        "| | clear or moon | cloudy | right side | balanced |",
        "|---|---|---|---|---|",
    ]

    def cell(v, fmt):
        return "-" if v is None else format(v, fmt)

    for key, name in (("before", "as shipped"), ("after_cross_validated", "refitted (cross-validated)")):
        v = m[key]
        lines.append(
            f"| {name} | {cell(v['clear_side_cover_median'], '.1f')}% | {cell(v['cloudy_cover_median'], '.1f')}% "
            f"| {cell(v['on_the_right_side_of_the_limit'], '.2f')} | {cell(v['balanced'], '.2f')} |"
        )
    error = m.get("painted_cover_error_points")
    if error:
        lines += [
            "",
            f"On the painted frames, the map's cover against the painted cover within {c['cloud_map_zenith_deg']:g} "
            f"deg (median difference): as shipped {cell(error['before'], '.1f')} points, refitted "
            f"{cell(error['after_cross_validated'], '.1f')} (cross-validated).",
        ]
    return [*lines, ""]
