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
  // The tab title counts what waits for me (the attention strip's data-mine, or the Overview's
  // list); when the count grows, an opt-in browser notification says so.
  var lastMine = null;
  function mineNow() {
    var strip = document.getElementById("attention");
    if (strip) return parseInt(strip.getAttribute("data-mine") || "0", 10) || 0;
    var list = document.querySelectorAll("#awaiting li.wait");
    return document.getElementById("awaiting") ? list.length : null;
  }
  function followAttention() {
    var n = mineNow();
    if (n === null) return;
    var base = document.title.replace(/^\(\d+\) /, "");
    document.title = (n > 0 ? "(" + n + ") " : "") + base;
    if (lastMine !== null && n > lastMine && window.Notification && Notification.permission === "granted") {
      new Notification("Lockstep: something waits for you", { body: base, tag: "lockstep-waiting" });
    }
    lastMine = n;
    var opt = document.querySelector(".notify-opt");
    if (opt && window.Notification && Notification.permission === "default") opt.hidden = false;
  }
  document.addEventListener("DOMContentLoaded", followAttention);
  document.addEventListener("htmx:oobAfterSwap", followAttention);
  document.addEventListener("htmx:afterSettle", followAttention);
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (!(t instanceof HTMLElement) || t.id !== "notify-me" || !window.Notification) return;
    Notification.requestPermission().then(function () { followAttention(); });
  });
})();
