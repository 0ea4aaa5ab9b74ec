// Docket console: refresh the queue table's rows every 15 s without reloading the page.
// The rows come from the server already escaped (the same template as the page); no inline scripts anywhere.
(function () {
  "use strict";
  var EVERY_MS = 15000;

  function refresh(table) {
    var url = table.getAttribute("data-rows-url");
    var body = table.tBodies[0];
    if (!url || !body) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (res) {
        if (res.redirected || !res.ok) { return null; }  // signed out or an error: keep what is shown
        return res.text();
      })
      .then(function (html) {
        if (html !== null && html !== undefined) { body.innerHTML = html; }
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("queue");
    if (table) { window.setInterval(function () { refresh(table); }, EVERY_MS); }
  });
})();
