// Datasets: drag-and-drop upload with a progress bar. The file is sent as the raw request body to the
// REST API (streamed to storage on the server), with the session's CSRF token. No framework, no CDN.
(function () {
  "use strict";

  var NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

  function human(bytes) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }

  function setup(form) {
    var input = form.querySelector('input[type="file"]');
    var zone = form.querySelector(".dropzone");
    var label = form.querySelector("[data-file]");
    var error = form.querySelector("[data-upload-error]");
    var wrap = form.querySelector(".upload-progress");
    var bar = wrap.querySelector(".progress-bar");
    var status = wrap.querySelector("[data-upload-status]");
    var button = form.querySelector('button[type="submit"]');
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10);
    var chosen = null;

    function fail(message) {
      error.textContent = message;
      error.hidden = false;
      button.disabled = false;
    }
    function choose(file) {
      chosen = file;
      error.hidden = true;
      label.textContent = file.name + " (" + human(file.size) + ")";
      label.classList.add("chosen");
    }
    function progress(pct, text) {
      bar.style.width = pct + "%";
      wrap.querySelector(".progress").setAttribute("aria-valuenow", String(pct));
      status.textContent = text;
    }

    input.addEventListener("change", function () { if (input.files.length) choose(input.files[0]); });
    zone.addEventListener("click", function (event) { if (event.target.tagName !== "LABEL") input.click(); });
    zone.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
    });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      if (event.dataTransfer && event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      var nameInput = form.querySelector('input[name="name"]');
      var name = form.getAttribute("data-dataset") || (nameInput ? nameInput.value.trim() : "");
      if (!NAME.test(name)) return fail("Give the dataset a name: letters, digits, - and _, starting with a letter or digit.");
      if (!chosen) return fail("Choose or drop a file first.");
      if (chosen.size === 0) return fail("The file is empty.");
      if (chosen.size > maxBytes) return fail("The file is " + human(chosen.size) + "; the limit is " + human(maxBytes) + ".");
      var message = form.querySelector('input[name="message"]').value;
      var url = form.getAttribute("data-api") + encodeURIComponent(name) + "/versions/?filename=" +
        encodeURIComponent(chosen.name) + "&message=" + encodeURIComponent(message);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", form.querySelector('input[name="csrfmiddlewaretoken"]').value);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.floor((100 * e.loaded) / e.total);
        progress(pct, pct + "% of " + human(e.total));
      };
      xhr.upload.onload = function () { progress(100, "Checking the file…"); };
      xhr.onload = function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (ignored) { body = null; }
        if ((xhr.status === 201 || xhr.status === 200) && body) {
          window.location.href = body.page_url + (body.created ? "" : "?pushed=existing");
          return;
        }
        wrap.hidden = true;
        fail(body && body.error ? body.error.message : "The upload failed (HTTP " + xhr.status + ").");
      };
      xhr.onerror = function () { wrap.hidden = true; fail("The upload was interrupted; nothing was stored. Try again."); };
      button.disabled = true;
      wrap.hidden = false;
      progress(0, "0%");
      xhr.send(chosen);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-upload]").forEach(setup);
  });
})();
