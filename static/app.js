// Lockstep dashboard behaviour. No inline scripts anywhere: this file and htmx are all there is.
(function () {
  "use strict";
  // Inventory upload: read the chosen file into the TOML textarea, so the form posts text.
  document.addEventListener("change", function (ev) {
    var input = ev.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file") return;
    var target = input.getAttribute("data-fill");
    var area = target && document.getElementById(target);
    if (!area || !input.files || !input.files[0]) return;
    var reader = new FileReader();
    reader.onload = function () { area.value = String(reader.result); };
    reader.readAsText(input.files[0]);
  });
  // Show the live-connection state of a run page.
  document.addEventListener("htmx:sseOpen", function (ev) {
    var el = document.getElementById("live-state");
    if (el) { el.textContent = "live"; el.className = "live on"; }
  });
  document.addEventListener("htmx:sseError", function (ev) {
    var el = document.getElementById("live-state");
    if (el) { el.textContent = "reconnecting…"; el.className = "live off"; }
  });
})();
