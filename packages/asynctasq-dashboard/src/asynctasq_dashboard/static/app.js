// Live updates: the page's regions arrive over server-sent events as HTML the server
// rendered (and escaped); each replaces the region of the same name. Forms marked
// data-confirm ask first. No inline script: the Content-Security-Policy forbids it.
(function () {
  "use strict";

  function confirmForms() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var question = form.getAttribute && form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) {
        event.preventDefault();
      }
    });
  }

  function live() {
    var url = document.body.getAttribute("data-live");
    var badge = document.getElementById("live-state");
    if (!url || !window.EventSource) {
      return;
    }
    var source = new EventSource(url);
    source.addEventListener("open", function () {
      badge.setAttribute("data-state", "on");
    });
    source.addEventListener("error", function () {
      badge.setAttribute("data-state", "off");
    });
    source.addEventListener("regions", function (event) {
      var regions = JSON.parse(event.data);
      Object.keys(regions).forEach(function (name) {
        var nodes = document.querySelectorAll('[data-region="' + CSS.escape(name) + '"]');
        nodes.forEach(function (node) {
          node.innerHTML = regions[name];
        });
      });
      document.body.setAttribute("data-updated", String(Date.now()));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmForms();
    live();
  });
})();
