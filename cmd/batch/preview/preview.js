// Live reload: the page asks the preview every second which version of
// the campaign's files it has, and reloads when they changed.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="batch-version"]');
  if (!meta) {
    return;
  }
  var shown = meta.content;
  function poll() {
    fetch("/version", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : shown; })
      .then(function (v) {
        if (v.trim() !== shown) {
          location.reload();
          return;
        }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 5000); }); // the preview stopped: try again later
  }
  setTimeout(poll, 1000);
})();
