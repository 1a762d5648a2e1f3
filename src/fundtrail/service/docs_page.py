"""The API docs page: plain HTML rendered on the server from the OpenAPI document (no scripts, no CDN)."""

from __future__ import annotations

import html
import json
from typing import Any


def _schema_text(schema: Any, components: dict[str, Any]) -> str:
    if isinstance(schema, dict) and "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = components.get(name, {})
    return json.dumps(schema, indent=1)[:4000]


def render_docs(spec: dict[str, Any]) -> str:
    comps = spec.get("components", {}).get("schemas", {})
    parts = [f"<h1>{html.escape(spec.get('info', {}).get('title', 'API'))} "
             f"{html.escape(str(spec.get('info', {}).get('version', '')))}</h1>",
             "<p>Send <code>Authorization: Bearer KEY</code>. Errors are problem JSON "
             "(<code>status, title, detail, field</code>): 401 no or bad key, 403 wrong role, 413 body too large, "
             "422 bad field, 429 rate limit (with <code>Retry-After</code>). "
             "The machine-readable document is <a href='/openapi.json'>/openapi.json</a>.</p>"]
    for path, ops in sorted(spec.get("paths", {}).items()):
        for method, op in ops.items():
            parts.append(f"<section><h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                         f"<p>{html.escape(op.get('summary', ''))}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th></tr>")
                for p in params:
                    parts.append(f"<tr><td>{html.escape(p['name'])}</td><td>{p.get('in')}</td>"
                                 f"<td>{p.get('required', False)}</td><td><code>"
                                 f"{html.escape(json.dumps(p.get('schema', {})))}</code></td></tr>")
                parts.append("</table>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                parts.append(f"<details><summary>request body</summary><pre>"
                             f"{html.escape(_schema_text(body, comps))}</pre></details>")
            parts.append("</section>")
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             "section{border-top:1px solid #ccc;padding:.5rem 0}table{border-collapse:collapse}"
             "td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}pre{background:#f6f6f6;padding:.5rem}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>fundtrail API</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>")
