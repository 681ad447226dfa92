"""The status page's inline style and script, and the Content-Security-Policy that allows exactly them.

Both are constants, so the policy names them by their SHA-256 hash instead of a
per-response nonce: a rendered page can then be kept per snapshot and served to every
reader as the same bytes. Nothing else may run or style the page: no other inline
script, no event-handler attribute, no `style=` attribute, nothing from another
origin. If a catalog string ever slipped through unescaped, the browser would still
refuse to run it.

The script is an improvement, never a requirement: without it the page is complete,
and its filter box is a plain GET form answered by the server.
"""

from __future__ import annotations

import base64
import hashlib

# How long one refresh waits on the catalog before asking again; it also bounds how
# old the node's psutil figures on screen can be, since they change without a new
# snapshot.
REFRESH_WAIT = "20s"

STYLE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1d232a;--muted:#5b6773;--line:#d9dee3;--head:#f3f5f7;
--pass:#1a7f37;--warn:#9a6700;--crit:#cf222e;--maint:#6639ba}
@media (prefers-color-scheme:dark){:root{--bg:#0f1419;--fg:#e6e9ec;--muted:#9aa5b1;--line:#2d3640;
--head:#182029;--pass:#2ea043;--warn:#bb8009;--crit:#da3633;--maint:#8957e5}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;padding:.6rem 1.25rem;
border-bottom:1px solid var(--line);background:var(--head)}
header h1{font-size:1.15rem;margin:0}
main{padding:0 1.25rem 1.5rem}
footer{padding:.75rem 1.25rem;border-top:1px solid var(--line)}
h2{font-size:1.05rem;margin:1.25rem 0 .4rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid var(--line)}
thead th{font-size:.8rem;color:var(--muted);font-weight:600}
tbody.svc th{background:var(--head);font-size:.95rem;font-weight:600}
code{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
td{overflow-wrap:break-word}
.wrap{overflow-wrap:anywhere}
ul{margin:0;padding-left:1.1rem}
ul.plain{list-style:none;padding:0}
dl{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem;margin:0}
dt{color:var(--muted)}
dd{margin:0}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.78rem;font-weight:600;
color:#fff;background:var(--muted);white-space:nowrap}
.s-passing,.s-online{background:var(--pass)}
.s-warning,.s-degraded,.s-draining,.s-recovering{background:var(--warn)}
.s-critical,.s-offline{background:var(--crit)}
.s-maintenance,.s-active{background:var(--maint)}
.s-planned{background:var(--muted)}
.muted,.note{color:var(--muted)}
.nowrap{white-space:nowrap}
.tag{display:inline-block;border:1px solid var(--line);border-radius:.3rem;padding:0 .3rem;
margin:0 .2rem .1rem 0;font-size:.8rem}
.node{display:flex;flex-wrap:wrap;gap:.75rem 3rem}
meter{width:10rem}
.conn{font-size:.8rem;padding:.05rem .5rem;border-radius:.6rem;border:1px solid var(--line)}
.conn.live{color:var(--pass)}
.conn.down{color:var(--crit)}
nav.pages{margin:.5rem 0}
nav.pages a{margin-right:1rem}
input[type=search]{font:inherit;padding:.2rem .5rem;width:16rem}
[hidden]{display:none!important}
"""

# The filter narrows what is on the page at once, then asks the server for the same
# filter (the page may hold only some of the matching services). Refreshes go
# through the blocking fragment: one request parked until the catalog changes.
SCRIPT = """
"use strict";
(() => {
  const live = document.getElementById("live");
  const box = document.getElementById("filter");
  const conn = document.getElementById("conn");
  let index = live.dataset.index;
  let page = live.dataset.page;
  let wanted = live.dataset.filter;
  let controller = null;
  let jump = false;
  let timer = 0;
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const matches = (group, words) => group.dataset.search.split(" ").some((token) => token.includes(words));
  function narrow() {
    const words = box.value.trim().toLowerCase();
    for (const group of live.querySelectorAll("[data-search]")) {
      group.hidden = words !== "" && !matches(group, words);
    }
  }
  function say(state, words) {
    conn.className = "conn " + state;
    conn.textContent = words;
  }
  async function refresh(blocking) {
    const query = new URLSearchParams();
    if (wanted) query.set("filter", wanted);
    if (page !== "1") query.set("page", page);
    if (blocking) {
      query.set("index", index);
      query.set("wait", "%(wait)s");
    }
    controller = new AbortController();
    const response = await fetch("fragment?" + query, {signal: controller.signal, cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    const body = await response.text();
    index = response.headers.get("X-Pilotfish-Index") || index;
    live.innerHTML = body;
    narrow();
  }
  async function follow() {
    let failures = 0;
    say("live", "live");
    for (;;) {
      const blocking = !jump;
      jump = false;
      try {
        await refresh(blocking);
        failures = 0;
        say("live", "live");
      } catch (error) {
        if (error.name === "AbortError") continue;
        failures += 1;
        say("down", "reconnecting");
        await sleep(Math.min(30000, 500 * 2 ** failures));
      }
    }
  }
  function apply() {
    const words = box.value.trim().toLowerCase();
    if (words === wanted) return;
    wanted = words;
    page = "1";
    jump = true;
    history.replaceState(null, "", wanted ? "?" + new URLSearchParams({filter: wanted}) : location.pathname);
    if (controller) controller.abort();
  }
  box.addEventListener("input", () => {
    narrow();
    clearTimeout(timer);
    timer = setTimeout(apply, 300);
  });
  box.form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    apply();
  });
  follow();
})();
""" % {"wait": REFRESH_WAIT}


def csp_hash(source: str) -> str:
    """The CSP source expression that allows an inline element with exactly this text."""
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    f"script-src {csp_hash(SCRIPT)}",
    f"style-src {csp_hash(STYLE)}",
    # The script's refreshes and the filter form go to this daemon only.
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])

# Sent with every answer of the status page, the fragment and the redirect included.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Always the catalog as it is now; nothing a shared cache should keep.
    "Cache-Control": "no-store",
}
