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
  // Times are rendered in UTC (<time datetime="…Z" title="… UTC">); here they are rewritten into
  // the viewer's time zone, named, while datetime and the UTC title stay for hovering.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function zoneOf(d) {
    try {
      var parts = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(d);
      for (var i = 0; i < parts.length; i++) if (parts[i].type === "timeZoneName") return parts[i].value;
    } catch (e) { /* an old browser: the offset below */ }
    var off = -d.getTimezoneOffset();
    return "UTC" + (off >= 0 ? "+" : "-") + pad(Math.floor(Math.abs(off) / 60)) + ":" + pad(Math.abs(off) % 60);
  }
  function localTimes() {
    var all = document.querySelectorAll("time[data-local][datetime]");
    for (var i = 0; i < all.length; i++) {
      var t = all[i];
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      var clock = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
      var text = t.getAttribute("data-local") === "time" ? clock
        : d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + clock;
      t.textContent = text + " " + zoneOf(d);
    }
  }
  document.addEventListener("DOMContentLoaded", localTimes);
  document.addEventListener("htmx:oobAfterSwap", localTimes);
  document.addEventListener("htmx:afterSettle", localTimes);
  // The Gantt chart is swapped whole by the live stream: the phases a person unfolded stay open.
  var openLanes = {};
  document.addEventListener("toggle", function (ev) {
    var d = ev.target;
    if (d instanceof HTMLDetailsElement && d.classList.contains("lane")) openLanes[d.id] = d.open;
  }, true);
  document.addEventListener("htmx:oobAfterSwap", function () {
    for (var id in openLanes) {
      var d = document.getElementById(id);
      if (d && openLanes[id] && !d.open) d.open = true;
    }
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
