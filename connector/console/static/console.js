// The console's only script: it adds conveniences; every page works without it.
"use strict";
(function () {
  // Ask before an action that cannot be undone (forms marked data-confirm).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    var risky = form.getAttribute("data-confirm-actions");
    if (!question && risky && form.elements.action) {
      var chosen = form.elements.action.value;
      if (risky.split(" ").indexOf(chosen) >= 0) {
        question = form.elements.action.selectedOptions[0].textContent + " the selected orders: are you sure?";
      }
    }
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // A "select all" checkbox ticks every checkbox of the named field in its form.
  document.addEventListener("change", function (event) {
    var box = event.target;
    var name = box.getAttribute && box.getAttribute("data-select-all");
    if (!name) { return; }
    Array.prototype.forEach.call(box.form.querySelectorAll('input[type="checkbox"][name="' + name + '"]'),
      function (each) { each.checked = box.checked; });
  });

  // Live regions (data-refresh="seconds") are fetched again and swapped in place, while the tab
  // is visible and the reader is not working inside them (focus would be lost).
  var live = document.querySelector("[data-refresh]");
  if (!live) { return; }
  var seconds = Math.max(5, parseInt(live.getAttribute("data-refresh"), 10) || 30);
  window.setInterval(function () {
    if (document.hidden || live.contains(document.activeElement)) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(live.id);
        if (fresh) { live.innerHTML = fresh.innerHTML; }
      })
      .catch(function () { /* the next tick tries again */ });
  }, seconds * 1000);
})();
