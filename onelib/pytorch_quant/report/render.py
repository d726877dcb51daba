"""The fidelity report as the user reads it: a text table, JSON, and a bar chart (matplotlib,
imported only when a chart is drawn; without it the chart is skipped, the rest works)."""
import json

# what the report says instead of drawing when matplotlib is missing
CHART_SKIPPED = "chart skipped: matplotlib is not installed (pip install matplotlib)"


class FidelityReport(object):
    """Per-layer and final differences between the circle model and PyTorch (see module doc)."""

    def __init__(self, model, engine, runtime, input_desc, options, layers, final, notes, timings):
        self.model = model
        self.engine = engine
        self.runtime = runtime
        self.input = input_desc
        self.options = options
        self.layers = layers        # list of dicts with LAYER_KEYS
        self.final = final          # dict with FINAL_KEYS (the first model output)
        self.notes = notes
        self.timings = timings

    @property
    def first_over_1lsb(self):
        """The first layer (graph order) whose per-op error exceeds 1 LSB, or None."""
        for row in self.layers:
            m = row["per_op"].get("max_lsb")
            if m is not None and m > 1:
                return row["name"]
        return None

    def to_dict(self):
        return {"model": self.model, "engine": self.engine, "runtime": self.runtime, "input": self.input,
                "options": self.options, "layers": self.layers, "first_over_1lsb": self.first_over_1lsb,
                "final": self.final, "notes": self.notes, "timings": self.timings}

    def to_json(self, path):
        from ..fileutil import write_atomic
        write_atomic(path, (json.dumps(self.to_dict(), indent=1, default=str) + "\n").encode("utf-8"))

    # -- text ------------------------------------------------------------------------------
    def table(self):
        head = ["#", "layer", "pytorch op", "circle op(s)", "scale",
                "max", "mean", "exact", "on", "max", "mean", "exact", "on"]
        rows = []
        for r in self.layers:
            rows.append([str(r["index"]), r["name"], r["pytorch_op"], r["circle_ops"],
                         "%.6g" % r["scale"] if r["scale"] else "-"]
                        + _stat_cells(r["per_op"]) + _stat_cells(r["accumulated"]))
        widths = [max(len(x) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
        right = {0, 4, 5, 6, 7, 9, 10, 11}

        def fmt(cells):
            out = []
            for i, c in enumerate(cells):
                out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
                if i in (4, 8):
                    out.append("|")
            return "  ".join(out).rstrip()

        header = fmt(head)
        bar1 = header.index("|")
        bar2 = header.index("|", bar1 + 1)
        lines = ["fidelity of %s: circle vs PyTorch (engine %s), runtime %s"
                 % (self.model, self.engine, self.runtime),
                 "input: %s" % self.input,
                 "LSB = steps of each tensor's own scale; scale '-': a float tensor, compared in float "
                 "(max = max |difference| in real units)",
                 "",
                 (" " * bar1 + "| " + "per-op (PyTorch's inputs)".ljust(bar2 - bar1 - 2) + "| "
                  + "accumulated (graph cut)"),
                 header,
                 "-" * len(header)]
        lines += [fmt(c) for c in rows]
        lines.append("")
        errs = [(r["name"], k, r[k]["error"]) for r in self.layers for k in ("per_op", "accumulated")
                if r[k].get("error")]
        for name, k, e in errs:
            lines.append("%s %s: %s" % (name, k.replace("_", "-"), e))
        floats = [r for r in self.layers if not r["scale"]]
        if floats:
            lines.append("float layers: max |difference| and its share of the range (max - min) of "
                         "PyTorch's tensor")
            for r in floats:
                lines.append("  %s: per-op %s, accumulated %s"
                             % (r["name"], _float_diff(r["per_op"]), _float_diff(r["accumulated"])))
        first = self.first_over_1lsb
        lines.append("first layer over 1 LSB per op: %s" % (first or "none"))
        f = self.final
        if f.get("error"):
            lines.append("final output %s: %s" % (f.get("name"), f["error"]))
        elif f["max_lsb"] is None:
            lines.append("final output %s (%s, float): max |difference| %s, exact %s, top-1 %s, top-5 %s (%s)"
                         % (f["name"], "x".join(map(str, f["shape"])), _float_diff(f), _pct(f["exact_share"]),
                            _pct(f["top1"]), _pct(f["top5"]), f["runtime"]))
        else:
            lines.append("final output %s (%s, scale %s): max %s LSB, mean %s LSB, exact %s, top-1 %s, top-5 %s (%s)"
                         % (f["name"], "x".join(map(str, f["shape"])), "%.6g" % f["scale"] if f["scale"] else "-",
                            _num(f["max_lsb"]), _num(f["mean_lsb"], "%.3f"), _pct(f["exact_share"]),
                            _pct(f["top1"]), _pct(f["top5"]), f["runtime"]))
        for n in self.notes:
            lines.append("note: " + n)
        t = self.timings
        lines.append("time: " + ", ".join("%s %.2fs" % (k, v) for k, v in t.items()))
        return "\n".join(lines)

    # -- picture ---------------------------------------------------------------------------
    def plot(self, path):
        """PNG bar chart: max LSB per layer, per-op and accumulated, with the 1-LSB line.
        Returns False, writing nothing, when matplotlib is not installed (``CHART_SKIPPED``)."""
        data = _chart_png(self)
        if data is None:
            return False
        from ..fileutil import write_atomic
        write_atomic(path, data)
        return True


def _num(v, fmt="%d"):
    return "-" if v is None else fmt % v


def _pct(v):
    return "-" if v is None else "%.1f%%" % (100.0 * v)


def _float_diff(s):
    if s.get("error") or s.get("max_abs") is None:
        return "-"
    share = s.get("range_share")
    return "%.3g (%s of the range)" % (s["max_abs"], "-" if share is None else "%.4g%%" % (100.0 * share))


def _stat_cells(s):
    if s.get("error"):
        return ["err", "-", "-", s.get("runtime") or "-"]
    if s.get("max_lsb") is None and s.get("max_abs") is not None:   # a float tensor: real units
        return ["%.1e" % s["max_abs"], "-", _pct(s.get("exact_share")), s.get("runtime") or "-"]
    return [_num(s.get("max_lsb")), _num(s.get("mean_lsb"), "%.3f"), _pct(s.get("exact_share")),
            s.get("runtime") or "-"]



# ------------------------------------------------------------------------------------ chart
PER_OP_COLOR, ACCUMULATED_COLOR, BAD_COLOR, FLOAT_COLOR = "#426ec8", "#f09628", "#c81e1e", "#787878"


def _chart_png(report):
    """The chart as PNG bytes, or None without matplotlib. A per-op bar over 1 LSB is red; a layer
    without a number shows '?' (an error) or 'F' (a float tensor: no grid to count LSB on)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    import io
    names = [r["name"] for r in report.layers]
    per = [r["per_op"].get("max_lsb") for r in report.layers]
    acc = [r["accumulated"].get("max_lsb") for r in report.layers]
    failed = [(bool(r["per_op"].get("error")), bool(r["accumulated"].get("error"))) for r in report.layers]
    top = max([v for v in per + acc if v is not None] + [2])
    fig = Figure(figsize=(min(max(6.0, 2.0 + 0.3 * len(names)), 80.0), 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.4
    for k, (values, color) in enumerate(((per, PER_OP_COLOR), (acc, ACCUMULATED_COLOR))):
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        colors = [BAD_COLOR if k == 0 and v is not None and v > 1 else color for v in values]
        ax.bar(xs, [v or 0 for v in values], width, color=colors)
        for i, (x, v) in enumerate(zip(xs, values)):
            if v is None:
                bad = failed[i][k]
                ax.text(x, 0, "?" if bad else "F", ha="center", va="bottom", fontsize=7,
                        color=BAD_COLOR if bad else FLOAT_COLOR)
    ax.axhline(1, color=BAD_COLOR, linestyle="--", linewidth=1)
    ax.set_xticks(list(range(len(names))))
    ax.set_xticklabels([n[:40] for n in names], rotation=90, fontsize=7)
    ax.set_xlim(-1, max(len(names), 1))
    ax.set_ylim(0, top * 1.1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("max difference (LSB)")
    ax.set_title("LSB error per layer: %s (%s, %s)" % (report.model, report.engine, report.runtime), fontsize=9)
    ax.legend(handles=[Patch(color=PER_OP_COLOR, label="per-op (PyTorch's inputs)"),
                       Patch(color=BAD_COLOR, label="per-op over 1 LSB"),
                       Patch(color=ACCUMULATED_COLOR, label="accumulated (graph cut)"),
                       Line2D([], [], color=BAD_COLOR, linestyle="--", label="1 LSB")],
              loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
