"""The simulator's plot (PNG): nodes per group and waiting steps over time, one column per
policy. Drawn with Pillow (already a platform dependency through the review plugin)."""

from __future__ import annotations

from pathlib import Path

from candela.scaling.simulator import SimResult

W, H = 560, 420
PAD_L, PAD_R, PAD_T, PAD_B = 52, 14, 28, 30
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
GREY = (120, 120, 120)


def _panel(draw, box, series, t_max: float, y_max: float, title: str, labels) -> None:  # type: ignore[no-untyped-def]
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=GREY)
    draw.text((x0, y0 - 16), title, fill=(0, 0, 0))
    for frac in (0.0, 0.5, 1.0):
        y = y1 - (y1 - y0) * frac
        draw.text((x0 - 44, y - 6), f"{y_max * frac:>6.0f}", fill=GREY)
    for i, pts in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        xy: list[tuple[float, float]] = []
        for t, v in pts:
            x = x0 + (x1 - x0) * (t / t_max if t_max else 0)
            y = y1 - (y1 - y0) * (v / y_max if y_max else 0)
            if xy:
                xy.append((x, xy[-1][1]))  # a step plot
            xy.append((x, y))
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        draw.text((x1 - 90, y0 + 4 + 12 * i), labels[i], fill=colour)


def plot(results: list[SimResult], path: Path | str, title: str = "") -> Path:
    """One column per result: nodes per group (top) and waiting steps (bottom), common axes."""
    from PIL import Image, ImageDraw

    out = Path(path)
    img = Image.new("RGB", (W * len(results), H + 20), "white")
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((8, 4), title, fill=(0, 0, 0))
    t_max = max((r.series[-1][0] for r in results if r.series), default=1.0) or 1.0
    n_max = max((max(c.values(), default=0) for r in results for _, c, _ in r.series), default=1)
    q_max = max((q for r in results for _, _, q in r.series), default=1)
    half = (H - PAD_T - PAD_B) // 2
    for col, r in enumerate(results):
        left = col * W + PAD_L
        right = (col + 1) * W - PAD_R
        groups = sorted({k for _, c, _ in r.series for k in c})
        top = (left, 20 + PAD_T, right, 20 + PAD_T + half - 20)
        _panel(
            draw,
            top,
            [[(t, c.get(g, 0)) for t, c, _ in r.series] for g in groups],
            t_max,
            max(n_max, 1),
            f"{r.policy}: nodes per group (p95 wait {r.wait_p95_s:.0f} s, "
            f"{sum(r.node_hours.values()):.1f} node-h)",
            [f"{g} nodes" for g in groups],
        )
        bottom = (left, 20 + PAD_T + half + 10, right, 20 + H - PAD_B)
        _panel(
            draw,
            bottom,
            [[(t, q) for t, _, q in r.series]],
            t_max,
            max(q_max, 1),
            "waiting steps",
            ["queue"],
        )
        draw.text((left, 20 + H - PAD_B + 6), "0 h", fill=GREY)
        draw.text((right - 40, 20 + H - PAD_B + 6), f"{t_max / 3600:.1f} h", fill=GREY)
    tmp = out.with_name(out.name + ".part")
    img.save(tmp, format="PNG")
    tmp.replace(out)
    return out
