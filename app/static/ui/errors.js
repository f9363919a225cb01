// Loaded first: every uncaught error, rejected promise, console.error and failed request is
// written into <pre id="pj-errors">, which the browser test reads (it must stay empty).
(function () {
  "use strict";
  var seen = [];
  function record(kind, message) {
    var line = kind + ": " + String(message).slice(0, 500);
    seen.push(line);
    var pre = document.getElementById("pj-errors");
    if (pre) {
      pre.textContent = seen.join("\n");
      pre.hidden = false;
    }
  }
  window.pjRecordError = record;
  window.addEventListener("error", function (ev) {
    if (ev.target && ev.target !== window && ev.target.src) {
      record("resource", ev.target.src);  // a script or image that failed to load
    } else {
      record("error", (ev.message || "") + " @ " + (ev.filename || "") + ":" + (ev.lineno || ""));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (ev) {
    record("unhandledrejection", ev.reason && ev.reason.stack ? ev.reason.stack : ev.reason);
  });
  var original = console.error;
  console.error = function () {
    record("console.error", Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", function () {
    if (seen.length) record("note", "errors before the page loaded: " + seen.length);
  });
})();
