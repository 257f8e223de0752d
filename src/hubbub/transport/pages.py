"""The page at `/` until the demo site arrives."""

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hubbub</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}</style></head>
<body><h1>Hubbub is running</h1>
<p>WebSocket endpoint: <code>/ws</code> &middot; HTTP API: <code>/api/</code> &middot;
<a href="/metrics">metrics</a> &middot; <a href="/healthz">health</a></p>
<p>In development mode, get a token with
<code>curl -X POST localhost:8000/api/dev/token -d '{"user":"alice"}'</code>.</p>
</body></html>
"""
