// Tracking pages: run selection, metric charts fed by the downsampling endpoint, live runs.
// No framework, no CDN; Plotly.js comes from the portal itself.
(function () {
  "use strict";

  var PLOT_CONFIG = { displaylogo: false, responsive: true };
  var POLL_MS = 3000;
  var EAGER_CHARTS = 6; // the first charts load at once; the rest when scrolled near

  // Runs table: select all, a live count, and buttons that need a selection.
  function setUpSelection(form) {
    var boxes = function () { return form.querySelectorAll('input[type="checkbox"][name="runs"]'); };
    var all = form.querySelector("[data-select-all]");
    var label = form.querySelector("[data-selection-count]");
    var initial = label ? label.textContent : "";
    function update() {
      var checked = Array.prototype.filter.call(boxes(), function (b) { return b.checked; }).length;
      form.querySelectorAll("[data-needs-selection]").forEach(function (b) { b.disabled = checked === 0; });
      if (label) label.textContent = checked ? checked + " selected" : initial;
      if (all) {
        all.checked = checked > 0 && checked === boxes().length;
        all.indeterminate = checked > 0 && checked < boxes().length;
      }
    }
    if (all) all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
      update();
    });
    form.addEventListener("change", function (event) { if (event.target.name === "runs") update(); });
    update();
  }

  // Metric charts: each [data-metric-chart] fetches its figure, built and downsampled on the server.
  function loadChart(el) {
    var url = el.getAttribute("data-metric-chart");
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (payload) {
        var figure = payload.figure;
        var layout = Object.assign({}, figure.layout);
        if (layout.height && el.clientHeight > layout.height) delete layout.height;
        window.Plotly.react(el, figure.data, layout, PLOT_CONFIG);
        el.setAttribute("data-rendered", "true");
        el.setAttribute("data-points", String(payload.returned_points));
        var note = el.closest(".card").querySelector("[data-chart-note]");
        if (note) note.textContent = describe(payload);
      })
      .catch(function () {
        var note = el.closest(".card").querySelector("[data-chart-note]");
        if (note) note.textContent = "could not load the history";
      });
  }

  function describe(payload) {
    var n = function (v) { return Number(v).toLocaleString("en-US"); };
    var text = payload.downsampled
      ? n(payload.returned_points) + " of " + n(payload.total_points) + " points"
      : n(payload.total_points) + " point" + (payload.total_points === 1 ? "" : "s");
    if (payload.non_finite_points) text += " · " + n(payload.non_finite_points) + " NaN/∞ not drawn";
    return text;
  }

  function setUpCharts() {
    if (!window.Plotly) return [];
    var charts = Array.prototype.slice.call(document.querySelectorAll("[data-metric-chart]"));
    var lazy = "IntersectionObserver" in window ? charts.slice(EAGER_CHARTS) : [];
    charts.slice(0, charts.length - lazy.length).forEach(loadChart);
    if (lazy.length) {
      var observer = new IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (!entry.isIntersecting) return;
          observer.unobserve(entry.target);
          loadChart(entry.target);
        });
      }, { rootMargin: "300px" });
      lazy.forEach(function (el) { observer.observe(el); });
    }
    return charts;
  }

  // A running run's page polls its status while it is live, like the jobs pages: status, duration and
  // latest values update in place and the drawn charts refetch; a finished run reloads the page once.
  function poll(root, charts) {
    var url = root.getAttribute("data-run-poll");
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        root.querySelectorAll('[data-field="status"]').forEach(function (el) {
          el.textContent = data.status.charAt(0) + data.status.slice(1).toLowerCase();
          el.className = "status status-" + data.status_css;
        });
        root.querySelectorAll('[data-field="duration"]').forEach(function (el) { el.textContent = data.duration; });
        var known = {};
        root.querySelectorAll("tr[data-metric]").forEach(function (row) { known[row.getAttribute("data-metric")] = row; });
        var added = false;
        var latest = {};
        data.metrics.forEach(function (m) {
          latest[m.key] = m.step + ":" + m.value;
          var row = known[m.key];
          if (!row) { added = true; return; }
          row.querySelector('[data-field="value"]').textContent = m.value;
          row.querySelector('[data-field="step"]').textContent = Number(m.step).toLocaleString("en-US");
        });
        if (data.finished || added) {
          root.removeAttribute("data-run-poll");
          window.setTimeout(function () { window.location.reload(); }, 500);
          return;
        }
        // Only charts whose latest point moved are fetched again: a long history is not re-read for nothing.
        var stale = charts.filter(function (el) {
          var key = el.getAttribute("data-metric-key");
          return el.getAttribute("data-rendered") === "true" && latest[key] !== el.getAttribute("data-latest");
        });
        stale.forEach(function (el) { el.setAttribute("data-latest", latest[el.getAttribute("data-metric-key")]); });
        Promise.all(stale.map(loadChart)).then(function () {
          window.setTimeout(function () { poll(root, charts); }, POLL_MS);
        });
      })
      .catch(function () { window.setTimeout(function () { poll(root, charts); }, POLL_MS * 2); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-selection]").forEach(setUpSelection);
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { if (select.form) select.form.submit(); });
    });
    var charts = setUpCharts();
    var live = document.querySelector("[data-run-poll]");
    if (live) window.setTimeout(function () { poll(live, charts); }, POLL_MS);
  });
})();
