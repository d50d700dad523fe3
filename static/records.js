// Records (change record, audit): the Print button opens the browser's print dialog, where
// "Save as PDF" gives the file a change board attaches to the ticket. A file, not inline
// script, because the Content-Security-Policy allows scripts from /static/ only.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { window.print(); });
  });
});
