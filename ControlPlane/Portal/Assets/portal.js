// The portal's only script (no inline script: the pages' CSP allows none). Everything works without it except live
// updates; with it, instance state refreshes in place, destructive forms ask first, and secrets can be copied.
(() => {
  "use strict";

  const POLL_MS = 2000;

  function applyStatus(row, status) {
    const badge = row.querySelector('[data-field="state"]');
    if (badge && badge.textContent !== status.state) {
      badge.textContent = status.state;
      badge.className = "badge tone-" + status.tone;
    }
    const health = row.querySelector('[data-field="health"]');
    if (health) health.textContent = status.state === "Running" ? status.health : "";
    const endpoint = row.querySelector('[data-field="endpoint"]');
    if (endpoint) endpoint.textContent = status.endpoint || "";
    const activity = row.querySelector('[data-field="activity"]');
    if (activity) activity.textContent = status.activity || "";
  }

  function watch(container) {
    const url = container.getAttribute("data-live-url");
    const reloadWhenSettled = container.hasAttribute("data-reload-when-settled");
    const busy = new Set();
    async function poll() {
      if (document.visibilityState === "visible") {
        try {
          const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
          if (response.status === 401 || response.redirected) { window.location.reload(); return; }
          if (response.ok) {
            const body = await response.json();
            if (!reloadWhenSettled) {
              // An instance the tenant's list no longer has was deleted (the list leaves deleted ones out).
              const listed = new Set(body.instances.map(status => status.id));
              container.querySelectorAll("[data-instance-id]").forEach(row => {
                if (!listed.has(row.getAttribute("data-instance-id"))) {
                  applyStatus(row, { state: "Deleted", tone: "idle", health: "", endpoint: "", activity: "" });
                }
              });
            }
            for (const status of body.instances) {
              const row = document.querySelector('[data-instance-id="' + CSS.escape(status.id) + '"]');
              if (!row) continue;
              applyStatus(row, status);
              if (status.activity) busy.add(status.id);
              else if (busy.delete(status.id) && reloadWhenSettled) { window.location.reload(); return; }
            }
          }
        } catch (_) { /* the next poll retries */ }
      }
      window.setTimeout(poll, POLL_MS);
    }
    container.querySelectorAll("[data-instance-id]").forEach(row => {
      if (row.querySelector('[data-field="activity"]')?.textContent.trim()) busy.add(row.getAttribute("data-instance-id"));
    });
    window.setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live-url]").forEach(watch);

    document.querySelectorAll("form[data-confirm]").forEach(form => {
      form.addEventListener("submit", event => {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });

    document.querySelectorAll("form[data-once]").forEach(form => {
      form.addEventListener("submit", () => {
        form.querySelectorAll('button[type="submit"]').forEach(button => {
          window.setTimeout(() => { button.disabled = true; button.textContent = "Working…"; }, 0);
        });
      });
    });

    document.querySelectorAll("[data-copy]").forEach(button => {
      button.addEventListener("click", async () => {
        const source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) return;
        try {
          await navigator.clipboard.writeText(source.textContent.trim());
          button.textContent = "Copied";
        } catch (_) {
          window.getSelection().selectAllChildren(source);
          button.textContent = "Selected: press Ctrl+C";
        }
      });
    });
  });
})();
