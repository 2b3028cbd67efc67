// MLOps Portal: small progressive enhancements. No framework, no CDN.
(function () {
  "use strict";

  // Plotly charts: any element with data-figure holds a figure dict built on the server.
  function renderCharts() {
    if (!window.Plotly) return;
    document.querySelectorAll("[data-figure]:not([data-rendered])").forEach(function (el) {
      var figure = JSON.parse(el.getAttribute("data-figure"));
      var layout = Object.assign({}, figure.layout);
      // The figure's height is a minimum: when the card is stretched by its row, fill it instead of
      // leaving a gap under the plot (Plotly then sizes to the element, and follows it on resize).
      if (layout.height && el.clientHeight > layout.height) delete layout.height;
      window.Plotly.newPlot(el, figure.data, layout, { displaylogo: false, responsive: true });
      el.setAttribute("data-rendered", "true");
    });
  }

  // Live progress: elements with data-poll fetch their job's status every 2 s until it finishes.
  // The fields they update (data-field) live in the nearest [data-job]: a job's card or list row.
  function poll(wrap) {
    var url = wrap.getAttribute("data-poll");
    var root = wrap.closest("[data-job]") || wrap;
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

  // Copy buttons: data-copy names the id of the element whose text goes to the clipboard.
  function copyText(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var label = button.textContent;
    var done = function () {
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = label; }, 2000);
    };
    // The Clipboard API exists only on HTTPS (and localhost); elsewhere select the text and copy it.
    var fallback = function () {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      if (document.execCommand("copy")) done();
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.textContent.trim()).then(done, fallback);
    } else {
      fallback();
    }
  }

  // Destructive actions ask first: a form (on submit) or a button (on click) with data-confirm.
  // Capture phase, so a button's own confirmation runs before its form's submit handler.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
  }, true);
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);

  document.addEventListener("DOMContentLoaded", function () {
    renderCharts();
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () { copyText(button); });
    });
    document.querySelectorAll("[data-poll]").forEach(function (wrap) { window.setTimeout(function () { poll(wrap); }, 1000); });
    if (document.querySelector("[data-refresh]")) scheduleRefresh();
  });

  // Live sections: elements with data-refresh="<seconds>" (and an id) are fetched again from this
  // page's URL, all in one request, and swapped for their new copies, until no copy asks for more.
  function scheduleRefresh() {
    var first = document.querySelector("[data-refresh]");
    if (!first) return;
    var seconds = Number(first.getAttribute("data-refresh")) || 3;
    window.setTimeout(function () {
      fetch(window.location.href, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          document.querySelectorAll("[data-refresh]").forEach(function (el) {
            var fresh = el.id && doc.getElementById(el.id);
            if (fresh) el.replaceWith(fresh);
            else el.removeAttribute("data-refresh");
          });
          renderCharts();  // swapped-in sections may hold new figures
          scheduleRefresh();
        })
        .catch(function () { window.setTimeout(scheduleRefresh, 5000); });
    }, seconds * 1000);
  }
})();
