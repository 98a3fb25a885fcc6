"""The batch report of a run (issue 16 item 4): its record gathered once (content.py) and
rendered as HTML (html.py) and PDF (pdf.py, fpdf2, imported only when a PDF is asked for), so
both show the same content.

Who may import it: aggregator.api.report (the report endpoints) and tests. It reads the store
and protocol models, never engine.
"""
