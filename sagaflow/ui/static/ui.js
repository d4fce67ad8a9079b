// sagaflow UI: local times, live refresh, lazy trace loading, confirmations. No libraries.
"use strict";

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const iso = el.getAttribute("datetime");
    const d = new Date(iso);
    if (!iso || isNaN(d)) continue;
    el.textContent = d.toLocaleString();
    el.title = d.toISOString().replace("T", " ").replace("Z", " UTC");
  }
}

// Replace a live region with the same region of a fresh copy of the page, unless the user is
// typing in it (a refresh must never eat a half-written signal payload).
async function refresh(region) {
  const active = document.activeElement;
  if (active && region.contains(active) && active.closest("form")) return true;
  const resp = await fetch(location.href, { headers: { "X-Requested-With": "sagaflow-ui" } });
  if (!resp.ok) return true;
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  const fresh = doc.getElementById(region.id);
  if (!fresh) return true;
  region.innerHTML = fresh.innerHTML;
  localTimes(region);
  return fresh.hasAttribute("data-live-auto") || region.id === "live-workflows";
}

function liveRefresh() {
  for (const region of document.querySelectorAll("[data-live-region]")) {
    const toggle = document.querySelector(`[data-live="${region.id.replace("live-", "")}"]`);
    if (!toggle && !region.hasAttribute("data-live-auto")) continue;
    const tick = async () => {
      let again = true;
      if (!toggle || toggle.checked) {
        try { again = await refresh(region); } catch (e) { again = true; }
      }
      if (again) setTimeout(tick, 2000);
    };
    setTimeout(tick, 2000);
  }
}

async function loadTrace(box, tries) {
  const resp = await fetch(box.dataset.traceSrc);
  box.innerHTML = await resp.text();
  const again = box.querySelector("[data-reload-trace]");
  if (again) {
    again.addEventListener("click", () => loadTrace(box, 0));
    // Spans reach Jaeger a few seconds after the work: look again for a while.
    if (tries < 15) setTimeout(() => loadTrace(box, tries + 1), 2000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  liveRefresh();
  const trace = document.getElementById("trace");
  if (trace && trace.dataset.traceSrc) loadTrace(trace, 0);
  document.addEventListener("submit", (ev) => {
    const msg = ev.target.dataset && ev.target.dataset.confirm;
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
});
