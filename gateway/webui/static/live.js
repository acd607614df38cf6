// Keeps the page current: every data-refresh-ms it fetches the same URL
// and swaps in the new <main>. No framework, no build step.
(function () {
  var every = Number(document.body.dataset.refreshMs) || 2000;
  var live = document.getElementById("live");
  function refresh() {
    fetch(location.href, { cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var next = doc.getElementById("content");
        var mine = document.getElementById("content");
        if (next && mine) { mine.replaceWith(next); }
        var stamp = doc.getElementById("live");
        if (stamp && live) { live.innerHTML = stamp.innerHTML; live.classList.remove("stale"); }
      })
      .catch(function () { if (live) { live.classList.add("stale"); } })
      .finally(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
