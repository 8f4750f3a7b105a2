// infoshare console: a little progressive enhancement. Every page works without it.
(function () {
  "use strict";

  // "All sectors" greys out (and disables) the single-sector boxes it overrides.
  function wireToggles() {
    document.querySelectorAll("input[data-toggles]").forEach(function (box) {
      var group = document.getElementById(box.getAttribute("data-toggles"));
      if (!group) { return; }
      var sync = function () {
        group.classList.toggle("is-disabled", box.checked);
        group.querySelectorAll("input").forEach(function (input) { input.disabled = box.checked; });
      };
      box.addEventListener("change", sync);
      sync();
    });
  }

  // Ask before an action that cannot be undone (revoke, delete).
  function wireConfirms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  // "Add another location": copy the last (empty) row with the next index.
  function wireLocations() {
    var button = document.querySelector("[data-add-location]");
    if (!button) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var rows = document.querySelectorAll("fieldset[data-location]");
      var last = rows[rows.length - 1];
      var index = rows.length;
      var copy = last.cloneNode(true);
      copy.querySelector("legend").textContent = "Location " + (index + 1);
      copy.querySelectorAll("[id], [for], [name]").forEach(function (el) {
        ["id", "for", "name"].forEach(function (attr) {
          var value = el.getAttribute(attr);
          if (value) { el.setAttribute(attr, value.replace(/^loc-\d+-/, "loc-" + index + "-")); }
        });
      });
      copy.querySelectorAll("input").forEach(function (input) {
        input.value = "";
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
      });
      copy.querySelectorAll(".field-errors").forEach(function (el) { el.remove(); });
      last.after(copy);
      copy.querySelector("input").focus();
    });
  }

  // After a submit, bring the reader to what changed: the problems, else the preview.
  function focusResult() {
    var target = document.getElementById("problems") || document.getElementById("preview");
    if (target) { target.focus(); target.scrollIntoView({block: "start"}); }
  }

  // Draw a subscription's area: each click on the map adds a point (lon, lat in the
  // equirectangular degree units the map uses: x = lon + 180, y = 90 - lat); the polygon
  // goes to the Drawn area field as GeoJSON, which the server checks like any other.
  function wireDrawing() {
    var map = document.querySelector("[data-draw-map]");
    var target = document.querySelector("[data-draw-target]");
    if (!map || !target) { return; }
    var shape = map.querySelector(".drawn");
    var points = [];
    var render = function () {
      shape.setAttribute("points", points.map(function (p) {
        return (p[0] + 180) + "," + (90 - p[1]);
      }).join(" "));
      if (points.length >= 3) {
        var ring = points.concat([points[0]]);
        target.value = JSON.stringify({type: "Polygon", coordinates: [ring]});
      }
    };
    map.addEventListener("click", function (event) {
      var at = map.createSVGPoint();
      at.x = event.clientX;
      at.y = event.clientY;
      var local = at.matrixTransform(map.getScreenCTM().inverse());
      points.push([Math.round((local.x - 180) * 1e4) / 1e4,
                   Math.round((90 - local.y) * 1e4) / 1e4]);
      render();
    });
    var clear = document.querySelector("[data-draw-clear]");
    if (clear) {
      clear.addEventListener("click", function () { points = []; target.value = ""; render(); });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireToggles();
    wireConfirms();
    wireLocations();
    wireDrawing();
    focusResult();
  });
}());
