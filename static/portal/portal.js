// MLOps Portal: small progressive enhancements. No framework, no CDN.
(function () {
  "use strict";

  // Plotly charts: any element with data-figure holds a figure dict built on the server.
  function renderCharts() {
    if (!window.Plotly) return;
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      var figure = JSON.parse(el.getAttribute("data-figure"));
      window.Plotly.newPlot(el, figure.data, figure.layout, { displaylogo: false, responsive: true });
      el.setAttribute("data-rendered", "true");
    });
  }

  // Live progress: elements with data-poll fetch their job's status every 2 s until it finishes.
  function poll(wrap) {
    var url = wrap.getAttribute("data-poll");
    var root = wrap.closest("#job-live") || wrap;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        var bar = wrap.querySelector(".progress-bar");
        bar.style.width = data.progress + "%";
        bar.className = "progress-bar status-bg-" + data.status;
        wrap.querySelector(".progress").setAttribute("aria-valuenow", data.progress);
        set(root, "status", data.status_label, "status status-" + data.status);
        set(root, "progress", data.progress + "%");
        set(root, "message", data.message);
        set(root, "attempts", String(data.attempts));
        if (data.duration !== null) set(root, "duration", data.duration.toFixed(1) + " s");
        var log = root.querySelector('[data-field="log"]') || document.querySelector('[data-field="log"]');
        if (log && data.log) log.textContent = data.log;
        var err = root.querySelector('[data-field="error"]');
        if (err && data.error) { err.textContent = data.error; err.hidden = false; }
        if (data.finished) {
          wrap.removeAttribute("data-poll");
          wrap.setAttribute("data-finished", data.status);
          if (root.id === "job-live") window.setTimeout(function () { window.location.reload(); }, 500);
        } else {
          window.setTimeout(function () { poll(wrap); }, 2000);
        }
      })
      .catch(function () { window.setTimeout(function () { poll(wrap); }, 5000); });
  }

  function set(root, field, text, className) {
    var el = root.querySelector('[data-field="' + field + '"]');
    if (!el) return;
    el.textContent = text;
    if (className) el.className = className;
  }

  document.addEventListener("DOMContentLoaded", function () {
    renderCharts();
    document.querySelectorAll("[data-poll]").forEach(function (wrap) { window.setTimeout(function () { poll(wrap); }, 1000); });
  });
})();
