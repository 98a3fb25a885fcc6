"""The batch report as PDF (fpdf2: pure Python, no browser on the server). The same content as
the HTML page; text is set in the PDF core font, so characters outside Latin-1 print as '?'."""

from __future__ import annotations

from typing import Any

from aggregator.api.records_schemas import SignatureView
from aggregator.report.content import Report, Table, utc
from aggregator.report.html import COLORS, manifestation, numeric, release_line, signature_table

FONT = "Helvetica"


def _latin(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


class _Doc:
    def __init__(self, report: Report) -> None:
        from fpdf import FPDF  # imported here: only a PDF request pays for it

        self.report = report
        pdf = FPDF(orientation="P", unit="mm", format="A4")
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.set_title(_latin(f"Batch report {report.run_id}"))
        footer = _latin(f"Run {report.run_id} - {release_line(report)}")

        def on_footer() -> None:
            pdf.set_y(-12)
            pdf.set_font(FONT, size=7)
            pdf.cell(0, 5, footer[:150] + f"  page {pdf.page_no()}", align="C")

        pdf.footer = on_footer  # type: ignore[method-assign]
        pdf.add_page()
        self.pdf = pdf

    def heading(self, text: str, size: int = 13) -> None:
        self.pdf.ln(2)
        self.pdf.set_font(FONT, style="B", size=size)
        self.pdf.multi_cell(0, 7, _latin(text), new_x="LMARGIN", new_y="NEXT")
        self.pdf.set_font(FONT, size=9)

    def text(self, text: str, size: int = 9, style: str = "") -> None:
        self.pdf.set_font(FONT, style=style, size=size)
        self.pdf.multi_cell(0, 4.5, _latin(text), new_x="LMARGIN", new_y="NEXT")

    def table(self, table: Table, widths: tuple[int, ...] | None = None) -> None:
        self.heading(table.title, 11)
        if not table.rows:
            self.text("none")
            return
        self.pdf.set_font(FONT, size=7)
        with self.pdf.table(col_widths=widths, text_align="LEFT", line_height=3.5) as out:
            head = out.row()
            for column in table.columns:
                head.cell(_latin(column))
            for row in table.rows:
                cells = out.row()
                for cell in row:
                    cells.cell(_latin(cell))
        if table.omitted:
            self.text(f"{table.omitted} more rows not shown.")

    def signatures(self, title: str, signatures: list[SignatureView]) -> None:
        self.table(
            signature_table(title, signatures, sha256_chars=16), (14, 22, 18, 26, 22, 20, 28)
        )
        for s in signatures:
            self.text(f"Signed: {manifestation(s)}", size=8)

    def plot(self, label: str, series: list[Any]) -> None:
        pdf = self.pdf
        points = {s.tag: numeric(s) for s in series}
        every = [p for pts in points.values() for p in pts]
        if not every:
            self.text(f"{label}: no numeric samples")
            return
        if pdf.get_y() > 230:
            pdf.add_page()
        x0, x1 = min(p[0] for p in every), max(p[0] for p in every)
        y0, y1 = min(p[1] for p in every), max(p[1] for p in every)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
        left, top, width, height = 20.0, pdf.get_y() + 6, 170.0, 45.0
        pdf.set_font(FONT, size=8)
        pdf.cell(0, 5, _latin(f"{label}: " + ", ".join(points)), new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(150, 150, 150)
        pdf.rect(left, top, width, height)
        for i, pts in enumerate(points.values()):
            pdf.set_draw_color(*_rgb(COLORS[i % len(COLORS)]))
            coords = [
                (
                    left + (x - x0) / (x1 - x0) * width,
                    top + height - (y - y0) / (y1 - y0) * height,
                )
                for x, y in pts
            ]
            if len(coords) > 1:
                pdf.polyline(coords)
        pdf.set_draw_color(0, 0, 0)
        pdf.set_y(top + height + 1)
        pdf.set_font(FONT, size=7)
        pdf.cell(
            0,
            4,
            _latin(f"run time {x0:.0f}-{x1:.0f} s; y {y0:.4g} to {y1:.4g}"),
            new_x="LMARGIN",
            new_y="NEXT",
        )


def render_pdf(report: Report) -> bytes:
    doc = _Doc(report)
    doc.heading(f"Batch report: run {report.run_id}", 16)
    doc.text(release_line(report), size=11, style="B")
    doc.table(Table("Run", ["", ""], [[k, v] for k, v in report.facts]), (40, 150))
    doc.heading("Method as run")
    if report.source is not None:
        src = report.source
        doc.text(f"Library method {src.name} version {src.version} (now {src.state}).")
        doc.signatures("Method approval signatures", src.approvals)
    else:
        doc.text("Not a method library version.")
    for m in report.methods:
        doc.text(f"Version {m.version}, {utc(m.time)} by {m.user or '-'}", style="B")
        doc.pdf.set_font("Courier", size=8)
        doc.pdf.multi_cell(0, 3.8, _latin(m.text), new_x="LMARGIN", new_y="NEXT")
    doc.pdf.add_page()
    doc.heading("Plots")
    if report.plot is not None:
        by_tag = {s.tag: s for s in report.plot.series}
        for label, tags in report.plot_groups:
            doc.plot(label, [by_tag[t] for t in tags if t in by_tag])
    for table in report.tables:
        doc.table(table)
    doc.signatures("Signatures on this run", report.signatures)
    doc.text(f"Report generated {utc(report.generated)}.", size=8)
    return bytes(doc.pdf.output())
